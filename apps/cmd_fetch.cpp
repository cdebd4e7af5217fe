// crayon fetch: download a dataset's official files, verify their MD5s, unpack them where
// load_dataset finds them (data/fetch.h does the work; this file parses and reports).
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <memory>

#include "apps/cli.h"
#include "core/check.h"
#include "data/fetch.h"

namespace crayon {

namespace {

// Ctrl-C during a download cancels it through the progress callback, so that the
// transfer's temporary file is removed rather than left behind (170 MB for CIFAR-10).
volatile std::sig_atomic_t g_interrupted = 0;
extern "C" void on_interrupt(int) { g_interrupted = 1; }

std::string usage_text() {
  std::string s =
      "usage: crayon fetch NAME [--dir D] [--force]\n\n"
      "Downloads the dataset's official files, checks each against its published MD5 before\n"
      "using it, and unpacks archives. Files already present with the right MD5 are skipped.\n\n"
      "datasets:\n";
  for (const auto& d : fetch_registry()) {
    std::string padded = d.name;
    padded.resize(std::max<size_t>(padded.size() + 1, 15), ' ');
    s += str("  ", padded, d.description, "\n");
  }
  s += str("\ndefault D: <data root>/NAME, the data root being $CRAYON_DATA_DIR or the repository's data/.\n",
           "$", kFetchBaseUrlEnv, "=http://host:port[/prefix] replaces the scheme and host of every URL\n",
           "(a local mirror; the tests' HTTP server). The checksums stay the same.");
  return s;
}

// "\r  12.3 / 170.1 MB" on a terminal, at most ten times a second.
ProgressFn progress_line() {
  if (!::isatty(STDERR_FILENO)) return {};
  auto last = std::make_shared<std::chrono::steady_clock::time_point>();
  return [last](uint64_t done, uint64_t total) {
    const auto now = std::chrono::steady_clock::now();
    if (now - *last < std::chrono::milliseconds(100) && done != total) return;
    *last = now;
    if (total)
      std::fprintf(stderr, "\r  %.1f / %.1f MB", double(done) / 1e6, double(total) / 1e6);
    else
      std::fprintf(stderr, "\r  %.1f MB", double(done) / 1e6);
    std::fflush(stderr);
  };
}

}  // namespace

int cmd_fetch(int argc, char** argv) {
  std::string name, dir;
  bool force = false;
  po::options_description opts("crayon fetch options");
  // clang-format off
  opts.add_options()
    ("help,h", "show this help")
    ("dir", po::value(&dir), "folder to put the files in (default: <data root>/NAME)")
    ("force", po::bool_switch(&force), "download again even what is present and verified");
  // clang-format on
  po::options_description all;
  all.add(opts).add_options()("name", po::value(&name), "dataset");
  po::positional_options_description positional;
  positional.add("name", 1);
  po::variables_map vm;
  if (!parse_command_line(argc, argv, all, vm, usage_text(), positional, &opts)) return 0;
  if (name.empty()) throw UsageError("expected a dataset NAME (crayon fetch --help lists them)");
  const DatasetSource* src = nullptr;
  try {
    src = &fetch_source(name);
  } catch (const std::invalid_argument& e) {
    throw UsageError(e.what());
  }
  if (dir.empty()) dir = fetch_default_dir(name);

  FetchOptions o;
  o.force = force;
  if (const char* base = std::getenv(kFetchBaseUrlEnv); base && *base) {
    try {
      with_base_url("https://example.org/", base);
    } catch (const std::invalid_argument& e) {
      throw UsageError(str("$", kFetchBaseUrlEnv, ": ", e.what()));
    }
    o.base_url = base;
    std::printf("using $%s=%s in place of the official hosts\n", kFetchBaseUrlEnv, base);
  }
  const ProgressFn bar = progress_line();
  bool bar_drawn = false;
  o.progress = [&](uint64_t done, uint64_t total) {
    if (g_interrupted) throw FetchCancelled("interrupted; nothing half-written was left behind");
    if (bar) bar(done, total), bar_drawn = true;
  };
  std::signal(SIGINT, on_interrupt);
  std::signal(SIGTERM, on_interrupt);
  o.log = [&](const std::string& line) {
    if (bar_drawn) std::fprintf(stderr, "\n"), bar_drawn = false;
    std::printf("%s\n", line.c_str());
    std::fflush(stdout);
  };
  std::printf("fetching %s into %s\n", name.c_str(), dir.c_str());
  const std::vector<FetchedFile> files = fetch_dataset(*src, dir, o);
  std::signal(SIGINT, SIG_DFL);
  std::signal(SIGTERM, SIG_DFL);
  if (bar_drawn) std::fprintf(stderr, "\n");
  size_t fetched = 0;
  for (const auto& f : files) fetched += f.skipped ? 0 : 1;
  std::printf("%s: ready in %s (%zu file%s downloaded, %zu already present)\n", name.c_str(), dir.c_str(), fetched,
              fetched == 1 ? "" : "s", files.size() - fetched);
  return 0;
}

}  // namespace crayon
