// crayon train: train a model on a dataset, checkpointing after every epoch.
#include <filesystem>
#include <iostream>
#include <set>

#include "apps/cli.h"
#include "apps/quant_flags.h"
#include "apps/trainer.h"
#include "apps/world.h"
#include "core/check.h"
#include "data/data_dir.h"
#include "nn/init.h"
#include "nn/spec.h"

namespace crayon {

int cmd_train(int argc, char** argv) {
  TrainConfig c;
  TrainRun run;
  bool nesterov = false, qat = false;
  po::options_description opts("crayon train options");
  // clang-format off
  opts.add_options()
    ("help,h", "show this help")
    ("dataset", po::value(&c.dataset)->default_value(c.dataset), "mnist | fashion-mnist | cifar10")
    ("data-dir", po::value(&c.data_dir), "folder holding the dataset's files (default: the dataset's usual place)")
    ("model", po::value(&c.model)->default_value(c.model), "preset (mlp, lenet5, cifar-cnn) or a spec like "
                                                            "'conv(6,5,pad=2)-relu6-maxpool(2)-flatten-linear(10)'")
    ("epochs", po::value(&c.epochs)->default_value(c.epochs), "total epochs (with --resume: train until this many; a cosine schedule is laid over this length)")
    ("batch-size", po::value(&c.batch_size)->default_value(c.batch_size), "examples per step")
    ("lr", real_value(&c.lr), "base learning rate")
    ("optimizer", po::value(&c.optimizer)->default_value(c.optimizer), "sgd | adam | adamw")
    ("momentum", real_value(&c.momentum), "SGD momentum")
    ("nesterov", po::bool_switch(&nesterov), "Nesterov momentum (SGD)")
    ("weight-decay", real_value(&c.weight_decay), "optimizer weight decay (all parameters)")
    ("l1", real_value(&c.l1), "L1 penalty lambda on weights: a Laplace prior")
    ("l2", real_value(&c.l2), "L2 penalty lambda on weights: a Gaussian prior")
    ("kure", real_value(&c.kure), "KURE lambda: penalize each layer's weight kurtosis away from 1.8 (uniform)")
    ("grad-l1", real_value(&c.grad_l1), "gradient-L1 lambda: penalize ||dL/dw||_1 (float training; ~3x per step)")
    ("lr-schedule", po::value(&c.lr_schedule)->default_value(c.lr_schedule),
     "constant | step:EVERY:GAMMA | cosine[:MIN] | warmup:STEPS[+SCHEDULE]")
    ("clip-grad-norm", real_value(&c.clip_grad_norm), "max global gradient norm (0: off)")
    ("seed", po::value(&c.seed)->default_value(c.seed), "seed for initialization, shuffling, augmentation, dropout")
    ("val", po::value(&c.val)->default_value(c.val), "hold out the last N training examples for validation")
    ("augment", po::value(&c.augment)->default_value(c.augment), "crop+flip augmentation: 1 on, 0 off, -1 cifar10 only")
    ("init", po::value(&c.init)->default_value(c.init), "pytorch (U(+-1/sqrt(fan_in))) | kaiming-uniform | kaiming-normal | "
                                                      "xavier-uniform | xavier-normal | FILE.h5: fine-tune this float checkpoint (its model replaces --model)")
    ("train-limit", po::value(&c.train_limit)->default_value(0), "use only the first N training examples (0: all)")
    ("test-limit", po::value(&c.test_limit)->default_value(0), "evaluate on the first N test examples (0: all)")
    ("threads", po::value(&run.threads)->default_value(2), "threads for GEMM and crayon's loops (under mpirun: per rank, default the machine's cores / its ranks)")
    ("out", po::value(&run.out)->default_value(run.out), "checkpoint file (HDF5), rewritten atomically every epoch")
    ("resume", po::value(&run.resume), "continue from this checkpoint; its settings are used")
    ("log", po::value(&run.log), "per-epoch log: FILE.csv or FILE.jsonl")
    ("quiet,q", po::bool_switch(&run.quiet), "no progress output")
    ("detect-anomaly", po::bool_switch(&run.detect_anomaly), "check every op's output and gradient for NaN/Inf; "
                                                             "the first names the op, the layer and the step");
  QuantFlags qflags;
  po::options_description qopts("quantization-aware training (fake-quant with the straight-through estimator)");
  qopts.add_options()
    ("qat", po::bool_switch(&qat), "train on the integer grid: weights per channel, activations per tensor")
    ("qat-start-epoch", po::value(&c.qat_start_epoch)->default_value(0), "train in float for N epochs, then fold batch norm and start QAT")
    ("update-bits", po::value(&c.update_bits)->default_value(0), "keep weights on a fixed-point grid of this many bits, rounding every update (Gupta et al. 2015; 0: off)")
    ("update-frac-bits", po::value(&c.update_frac_bits)->default_value(-1), "fractional bits of that grid (-1: fitted to the initial weights)")
    ("update-rounding", po::value(&c.update_rounding)->default_value(c.update_rounding), "nearest | stochastic rounding of the weight updates");
  add_quant_options(qopts, qflags, true);
  opts.add(qopts);
  // clang-format on
  po::variables_map vm;
  const std::string usage = "usage: crayon train [options]\n  Train a network; test accuracy after every epoch.";
  if (!parse_command_line(argc, argv, opts, vm, usage)) return 0;
  c.nesterov = nesterov;
  require_threads(vm);
  for (const char* f : {"out", "resume", "log", "init"}) require_path(vm, f);
  if (!qat) {
    const std::string f = !vm["qat-start-epoch"].defaulted() ? "qat-start-epoch" : given_quant_flag(vm);
    if (!f.empty()) throw UsageError(str("--", f, ": needs --qat"));
  } else {
    QatConfig q = quant_config_from(vm, qflags);
    if (q.warmup_steps < 1)
      throw UsageError(str(vm.count("qat-warmup") ? "--qat-warmup" : "--qat-config", ": expected at least 1 step (the "
                           "activation grids are observed during the first steps), got ", q.warmup_steps));
    q.seed = uint64_t(c.seed);
    c.qat = describe(q);
  }
  if (c.update_bits == 0)
    for (const char* f : {"update-frac-bits", "update-rounding"})
      if (!vm[f].defaulted()) throw UsageError(str("--", f, ": needs --update-bits"));
  if (const auto p = check_config(c)) throw UsageError(str(flag_name(p->setting), ": ", p->message));
  if (!is_init_scheme(c.init) && !std::filesystem::is_regular_file(c.init))
    throw UsageError(str("--init: expected pytorch, kaiming-uniform, kaiming-normal, xavier-uniform, xavier-normal or a "
                         "checkpoint file, got '", c.init, "' (no such file)"));
  if (!is_init_scheme(c.init) && !vm["model"].defaulted())
    throw UsageError(str("--model: not used with --init ", c.init, " (the checkpoint's model is fine-tuned)"));
  if (!vm.count("resume")) {
    // A bad spec is a bad flag value: check it against the dataset's image shape now.
    const Shape input = c.dataset == "cifar10" ? Shape{3, 32, 32} : Shape{1, 28, 28};
    try {
      model_size(c.model, input);
    } catch (const std::invalid_argument& e) {
      throw UsageError(str("--model: ", e.what()));
    }
  }
  if (vm.count("resume")) {
    // A resumed run continues the checkpoint's run exactly, so its settings can't change.
    const std::set<std::string> allowed{"resume", "epochs", "out", "log", "quiet", "threads", "detect-anomaly", "help"};
    for (const auto& [name, value] : vm)
      if (!value.defaulted() && !allowed.count(name) && !(name == "nesterov" && !nesterov))
        throw UsageError(str("--", name, ": cannot be changed when resuming (the checkpoint's settings are used)"));
  }
  run.config = c;
  if (world().mpi()) {
    // mpirun: every rank trains its shard of each batch; the ranks of a machine share its cores.
    run.replicas = &world();
    if (vm["threads"].defaulted())
      run.threads = world().default_threads();
  }
  run_training(run);
  return 0;
}

}  // namespace crayon
