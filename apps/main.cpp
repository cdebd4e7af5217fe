// crayon: one program, one subcommand per job. Each subcommand lives in cmd_<name>.cpp.
// Errors from anywhere below end here as one line on stderr and a non-zero exit:
// 2 for a bad command line, 1 for anything else (bad file, diverged training, ...).
// In an MPI job (apps/world.h) the failing rank names itself and ends every rank.
#include <csignal>
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>

#include "apps/cli.h"
#include "apps/world.h"

namespace {

struct Command {
  const char* name;
  int (*run)(int, char**);
  const char* help;
};

const Command kCommands[] = {
    {"train", crayon::cmd_train, "train a network (MNIST, Fashion-MNIST, CIFAR-10) with checkpoints"},
    {"eval", crayon::cmd_eval, "accuracy of a checkpoint or int8 model; --compare an int8 model beside it"},
    {"quantize", crayon::cmd_quantize, "post-training quantization: calibrate a float checkpoint's activation grids"},
    {"export", crayon::cmd_export, "a quantized checkpoint to crayon's int8 file, or any checkpoint to ONNX (QDQ or float)"},
    {"summary", crayon::cmd_summary, "a checkpoint, int8 or ONNX file as a table: shapes, parameters, MACs, bytes, grids"},
    {"analyze", crayon::cmd_analyze, "per-layer grid errors, the certified error bound, KL, layer sensitivity, bits"},
    {"sweep", crayon::cmd_sweep, "regularizer x strength x bits x PTQ/QAT grid: one row per cell, resumable, plots"},
    {"demo", crayon::cmd_demo, "one runnable demonstration per idea of DESIGN.md (crayon demo lists them)"},
    {"plot", crayon::cmd_plot, "a training log (--log F.csv) as PNGs: loss and accuracy per epoch, train vs test"},
    {"fetch", crayon::cmd_fetch, "download a dataset (MNIST, Fashion-MNIST, KMNIST, CIFAR-10), verify its checksums"},
};

void usage(FILE* to) {
  std::fprintf(to, "usage: crayon <command> [options]    (crayon <command> --help for its options)\n\ncommands:\n");
  for (const Command& c : kCommands) std::fprintf(to, "  %-10s %s\n", c.name, c.help);
}

// " (rank R of N)" in an MPI job.
std::string who() {
  const std::string r = crayon::rank_label();
  return r.empty() ? r : " " + r;
}

// The exit of a failed command: alone, its code; in an MPI job, every rank's.
int fail(int code) {
  if (crayon::world().mpi()) crayon::world().abort(code);
  return code;
}

}  // namespace

int main(int argc, char** argv) {
  crayon::WorldSession session(argc, argv);
  // Past a file-size limit (ulimit -f) a write should fail with EFBIG, reported as an error
  // naming the file, not kill the process halfway through a checkpoint.
  std::signal(SIGXFSZ, SIG_IGN);
  if (argc < 2) {
    usage(stderr);
    return 2;
  }
  const std::string cmd = argv[1];
  if (cmd == "--help" || cmd == "-h" || cmd == "help") {
    usage(stdout);
    return 0;
  }
  for (const Command& c : kCommands) {
    if (cmd != c.name) continue;
    try {
      return c.run(argc - 1, argv + 1);
    } catch (const crayon::UsageError& e) {
      std::fprintf(stderr, "crayon %s%s: %s\nusage: crayon %s [options]   ('crayon %s --help' lists them)\n", c.name,
                   who().c_str(), crayon::one_line(e.what()).c_str(), c.name, c.name);
      return fail(2);
    } catch (const std::exception& e) {
      // One line whatever the message quotes (a file name, a flag's value).
      std::fprintf(stderr, "crayon %s%s: %s\n", c.name, who().c_str(), crayon::one_line(e.what()).c_str());
      return fail(1);
    }
  }
  std::fprintf(stderr, "crayon: unknown command '%s'\n", cmd.c_str());
  usage(stderr);
  return 2;
}
