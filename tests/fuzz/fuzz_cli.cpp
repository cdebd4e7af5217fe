// Every subcommand's command-line parsing (apps/cli.h) but fetch's (which would go to the
// network): the input is split at NUL bytes into argv. The run is fenced in: the working
// folder is the scratch folder, no argument may contain '/', and CRAYON_DATA_DIR points at
// an empty folder, so a command that parses goes on only until it needs data or a file and is
// refused there. What must hold: exit 0, 1 or 2, or an exception with a message.
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "apps/cli.h"
#include "core/parallel.h"
#include "tests/fuzz/fuzz_support.h"

using namespace crayon;

namespace {
using Command = int (*)(int, char**);
const Command kCommands[] = {cmd_train, cmd_eval, cmd_quantize, cmd_export, cmd_summary,
                             cmd_analyze, cmd_sweep, cmd_plot, cmd_demo};
}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  const std::string data = fuzz::scratch() + "/no-data";
  std::filesystem::create_directories(data);
  setenv("CRAYON_DATA_DIR", data.c_str(), 1);
  if (chdir(fuzz::scratch().c_str()) != 0) std::abort();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1 || size > 512) return 0;
  const Command command = kCommands[data[0] % std::size(kCommands)];
  std::vector<std::string> args{"crayon-command"};
  std::string arg;
  for (size_t i = 1; i < size; ++i) {
    if (data[i] == '/') return 0;  // no path outside the scratch folder
    if (data[i] == 0) {
      args.push_back(arg);
      arg.clear();
    } else {
      arg += char(data[i]);
    }
  }
  if (!arg.empty()) args.push_back(arg);
  if (args.size() > 24) return 0;
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  const int threads = num_threads();
  // A refusal's message may quote a file name as typed (control characters included):
  // `crayon` prints every message through one_line() (apps/main.cpp), so here it need only
  // say something.
  try {
    const int rc = command(int(args.size()), argv.data());
    if (rc < 0 || rc > 2) fuzz::fail("cli: an exit code other than 0, 1 or 2");
  } catch (const std::exception& e) {
    if (*e.what() == '\0') fuzz::fail("cli: a refusal without a message");
  }
  set_num_threads(threads);
  return 0;
}
