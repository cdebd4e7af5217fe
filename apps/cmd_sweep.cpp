// crayon sweep: the regularization-vs-quantization experiment (apps/sweep.h) from the
// command line; every list flag takes comma-separated values.
#include <cstdio>
#include <string>
#include <vector>

#include "apps/cli.h"
#include "apps/sweep.h"
#include "apps/world.h"
#include "core/check.h"
#include "core/parse.h"

namespace crayon {

namespace {

std::vector<std::string> choices(const char* flag, const std::string& s, std::initializer_list<const char*> allowed) {
  std::vector<std::string> out = split_list(s);
  for (const std::string& v : out) {
    bool ok = false;
    std::string list;
    for (const char* a : allowed) ok |= v == a, list += list.empty() ? a : str(", ", a);
    if (!ok) throw UsageError(str("--", flag, ": expected some of ", list, ", got '", v, "'"));
  }
  return out;
}

}  // namespace

int cmd_sweep(int argc, char** argv) {
  SweepOptions o;
  std::string models, regs, l1, l2, kure, grad_l1, bits, scopes, methods, roundings, seeds;
  bool quick = false, no_plots = false;
  po::options_description opts("crayon sweep options");
  // clang-format off
  opts.add_options()
    ("help,h", "show this help")
    ("dir", po::value(&o.dir)->default_value(o.dir), "folder of the sweep: float/ models, cells/, results.csv, "
                                                     "results.jsonl, plots/; an existing one is resumed")
    ("quick", po::bool_switch(&quick), "a small subset in a few minutes: mlp, none and l2 1e-3, bits 8,4,2, PTQ and "
                                       "QAT, one seed, one epoch on 5000 images (flags after it still apply)")
    ("models", po::value(&models), "presets or specs (default lenet5,mlp)")
    ("regs", po::value(&regs), "none,l1,l2,kure,gradl1 (default none,l1,l2)")
    ("l1", po::value(&l1), "L1 strengths (default 1e-5,3e-5,1e-4)")
    ("l2", po::value(&l2), "L2 strengths (default 1e-4,3e-4,1e-3)")
    ("kure", po::value(&kure), "KURE strengths (default 0.01,0.1,1)")
    ("grad-l1", po::value(&grad_l1), "gradient-L1 strengths (default 1e-5,1e-4,1e-3)")
    ("bits", po::value(&bits), "bit widths, 2..8 (default 8,6,4,3,2)")
    ("scopes", po::value(&scopes), "wa (weights and activations at the bits), w (weights; activations 8-bit)")
    ("methods", po::value(&methods), "ptq,qat (default both)")
    ("roundings", po::value(&roundings), "QAT rounding: nearest,stochastic (default both)")
    ("seeds", po::value(&seeds), "seeds (default 1,2,3)")
    ("dataset", po::value(&o.dataset)->default_value(o.dataset), "mnist | fashion-mnist | cifar10")
    ("data-dir", po::value(&o.data_dir), "folder holding the dataset's files")
    ("epochs", po::value(&o.epochs)->default_value(o.epochs), "float training epochs")
    ("qat-epochs", po::value(&o.qat_epochs)->default_value(o.qat_epochs), "QAT fine-tuning epochs")
    ("train-limit", po::value(&o.train_limit)->default_value(0), "train on the first N images (0: all)")
    ("test-limit", po::value(&o.test_limit)->default_value(0), "evaluate on the first N test images (0: all)")
    ("data-bits-limit", po::value(&o.data_bits_limit)->default_value(o.data_bits_limit), "training images the data bits are measured on (0: all)")
    ("jobs", po::value(&o.jobs)->default_value(o.jobs), "processes running cells at once (under mpirun: 1, the ranks are the jobs)")
    ("threads", po::value(&o.threads)->default_value(o.threads), "threads in all, shared by the jobs (under mpirun: per rank, default the machine's cores / its ranks)")
    ("no-plots", po::bool_switch(&no_plots), "skip the PNGs")
    ("quiet,q", po::bool_switch(&o.quiet), "print nothing");
  // clang-format on
  po::variables_map vm;
  if (!parse_command_line(argc, argv, opts, vm, "usage: crayon sweep [--quick] [--dir D] [options]")) return 0;
  if (quick) {
    // The subset's settings, then any number flag given explicitly on top.
    const SweepOptions given = o;
    o = quick_sweep(o);
    if (!vm["epochs"].defaulted()) o.epochs = given.epochs;
    if (!vm["qat-epochs"].defaulted()) o.qat_epochs = given.qat_epochs;
    if (!vm["train-limit"].defaulted()) o.train_limit = given.train_limit;
    if (!vm["test-limit"].defaulted()) o.test_limit = given.test_limit;
    if (!vm["data-bits-limit"].defaulted()) o.data_bits_limit = given.data_bits_limit;
  }
  for (const char* f : {"epochs", "qat-epochs", "jobs"}) require_positive(vm, f);
  for (const char* f : {"train-limit", "test-limit", "data-bits-limit"}) require_non_negative(vm, f);
  require_threads(vm);
  require_threads(vm, "jobs");  // a process per job: the same bound as threads
  require_path(vm, "dir");
  require_one_of(vm, "dataset", {"mnist", "fashion-mnist", "cifar10"});
  if (vm.count("models")) o.models = split_list(models);
  if (vm.count("regs")) o.regs = choices("regs", regs, {"none", "l1", "l2", "kure", "gradl1"});
  if (vm.count("l1")) o.l1 = number_list<double>("l1", l1);
  if (vm.count("l2")) o.l2 = number_list<double>("l2", l2);
  if (vm.count("kure")) o.kure = number_list<double>("kure", kure);
  if (vm.count("grad-l1")) o.grad_l1 = number_list<double>("grad-l1", grad_l1);
  if (vm.count("bits")) o.bits = bit_width_list("bits", bits);
  for (double v : o.l1)
    if (!(v > 0)) throw UsageError(str("--l1: expected positive strengths, got ", v));
  for (double v : o.l2)
    if (!(v > 0)) throw UsageError(str("--l2: expected positive strengths, got ", v));
  for (double v : o.kure)
    if (!(v > 0)) throw UsageError(str("--kure: expected positive strengths, got ", v));
  for (double v : o.grad_l1)
    if (!(v > 0)) throw UsageError(str("--grad-l1: expected positive strengths, got ", v));
  if (vm.count("scopes")) o.scopes = choices("scopes", scopes, {"wa", "w"});
  if (vm.count("methods")) o.methods = choices("methods", methods, {"ptq", "qat"});
  if (vm.count("roundings")) o.roundings = choices("roundings", roundings, {"nearest", "stochastic"});
  if (vm.count("seeds")) o.seeds = number_list<int64_t>("seeds", seeds);
  if (world().mpi()) {
    // mpirun: the ranks are the jobs, each taking the next cell free (apps/world.h).
    if (o.jobs != 1)
      throw UsageError(str("--jobs: under mpirun every rank is one job (", world().size(), " ranks), got --jobs ", o.jobs));
    if (vm["threads"].defaulted())
      o.threads = world().default_threads();
  }
  if (o.jobs > o.threads) o.threads = o.jobs;  // at least one thread a job
  o.plots = !no_plots;
  run_sweep(o);
  return 0;
}

}  // namespace crayon
