// crayon sweep --quick end to end on real MNIST: rows, plots, a SIGKILL in the middle and a
// restart that recomputes nothing finished, and --jobs 2 giving the same rows.
#include <doctest/doctest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "core/check.h"
#include "tests/apps/app_support.h"

using namespace crayon;

namespace {

std::vector<std::string> sweep(const std::string& dir, int jobs, int threads) {
  return {CRAYON_BINARY, "sweep", "--quick", "--dir", dir, "--data-dir", std::string(CRAYON_SOURCE_DIR) + "/data/mnist",
          "--jobs", std::to_string(jobs), "--threads", std::to_string(threads)};
}

// key -> the row's line without its time (the one column a rerun may change).
std::map<std::string, std::string> rows_of(const std::string& jsonl) {
  std::map<std::string, std::string> rows;
  std::ifstream f(jsonl);
  std::string line;
  while (std::getline(f, line)) {
    const size_t k = line.find("\"key\": \""), e = line.find('"', k + 8);
    const size_t t = line.find(", \"seconds\"");
    REQUIRE(k != std::string::npos);
    REQUIRE(t != std::string::npos);
    CHECK(rows.emplace(line.substr(k + 8, e - k - 8), line.substr(0, t)).second);  // no cell twice
  }
  return rows;
}

int64_t lines(const std::string& path) {
  std::ifstream f(path);
  int64_t n = 0;
  std::string line;
  while (std::getline(f, line)) ++n;
  return n;
}

}  // namespace

TEST_CASE("sweep --quick: rows and plots, killed and restarted without recomputing, the same rows with --jobs 2") {
  TempDir dir;
  const std::string whole = dir / "whole", cut = dir / "cut", jobs = dir / "jobs";
  REQUIRE(wait_ok(spawn(sweep(whole, 1, 1), dir / "whole.log")));
  const auto want = rows_of(whole + "/results.jsonl");
  CHECK(want.size() == 12);  // mlp x {none, l2} x bits {8, 4, 2} x {PTQ, QAT}
  CHECK(lines(whole + "/results.csv") == 13);  // and a header
  for (const char* png : {"drop-mlp-ptq-wa.png", "drop-mlp-qat-wa-nearest.png", "error-mlp-ptq-wa.png", "bound.png",
                          "kl.png", "certified.png", "accuracy-vs-bits-of-description.png"}) {
    CAPTURE(png);
    CHECK(slurp(whole + "/plots/" + png).compare(1, 3, "PNG") == 0);
  }
  // The tables: every section, one drop row per regularizer and panel, drops that are the
  // rows' own (the 2-bit PTQ drop of the unregularized model, from results.jsonl).
  const std::string tables = slurp(whole + "/tables.md");
  for (const char* want_text : {"## Accuracy drop", "### mlp, PTQ, weights and activations", "## The float models",
                                "## The error bound at the logits", "## What predicts the drop", "| none |",
                                "| l2 0.001 |"})
    CHECK(tables.find(want_text) != std::string::npos);
  int checked = 0;
  for (const auto& [key, line] : want)
    if (key.find("reg=none") != std::string::npos && key.find("bits=2 ") != std::string::npos &&
        key.find("method=ptq") != std::string::npos) {
      const size_t at = line.find("\"drop\": ");
      REQUIRE(at != std::string::npos);
      char drop[32];
      std::snprintf(drop, sizeof drop, " %.2f |", 100 * std::stod(line.substr(at + 8)));
      CAPTURE(drop);
      CHECK(tables.find(drop) != std::string::npos);
      ++checked;
    }
  CHECK(checked == 1);
  // Killed once a few cells are in, then restarted: the finished cells are kept as they are.
  const pid_t pid = spawn(sweep(cut, 1, 1), dir / "cut.log");
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(10);
  while (lines(cut + "/results.jsonl") < 4 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  ::kill(pid, SIGKILL);
  int status = 0;
  waitpid(pid, &status, 0);
  const int64_t before = lines(cut + "/results.jsonl");
  REQUIRE(before >= 4);
  REQUIRE(before < 12);
  const auto kept = rows_of(cut + "/results.jsonl");
  REQUIRE(wait_ok(spawn(sweep(cut, 1, 1), dir / "cut2.log")));
  CHECK(slurp(dir / "cut2.log").find(str(kept.size(), " done before")) != std::string::npos);
  const auto got = rows_of(cut + "/results.jsonl");
  CHECK(got == want);
  for (const auto& [key, row] : kept) CHECK(got.at(key) == row);
  // Two jobs of one thread each: the same rows as one job of one thread.
  REQUIRE(wait_ok(spawn(sweep(jobs, 2, 2), dir / "jobs.log")));
  CHECK(rows_of(jobs + "/results.jsonl") == want);
}
