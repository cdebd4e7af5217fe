// Hostile and mistyped input to the apps: checkpoints crafted from a good one (class counts
// that do not match the data, specs and shapes that would allocate gigabytes, impossible
// training state, settings the flags would refuse, a missing optimizer buffer), int8 files
// with the wrong number of classes, and flags beyond their bounds. Each is refused with one
// line naming the file (or the flag) and what was expected, before anything big is allocated.
#include <doctest/doctest.h>

#include <algorithm>

#include <cmath>
#include <limits>
#include <string>

#include "apps/cli.h"
#include "apps/train_checkpoint.h"
#include "apps/evaluate.h"
#include "apps/trainer.h"
#include "core/check.h"
#include "core/limits.h"
#include "data/dataset.h"
#include "data/loader.h"
#include "nn/spec.h"
#include "quant/int8_export.h"
#include "quant/qat.h"
#include "tests/apps/app_support.h"
#include "tests/support/h5edit.h"

using namespace crayon;

namespace {

std::string mnist_dir() { return std::string(CRAYON_SOURCE_DIR) + "/data/mnist"; }

// A float mlp trained for one epoch on 512 images (8 steps of 64): the good file every test
// here crafts its bad ones from.
std::string good_checkpoint(const TempDir& dir, const std::string& name = "good.h5") {
  TrainRun run = small_run(dir / name);
  run.config.epochs = 1;
  run.config.train_limit = 512;
  run.config.test_limit = 100;
  run_training(run);
  return run.out;
}

std::string copy_of(const std::string& from, const std::string& to) {
  fs::copy_file(from, to, fs::copy_options::overwrite_existing);
  return to;
}

// load_train_checkpoint(path) throws; the message names the file and contains `expect`.
void refused(const std::string& path, const std::string& expect) {
  INFO(path);
  try {
    load_train_checkpoint(path);
  } catch (const std::runtime_error& e) {
    const std::string msg = e.what();
    INFO(msg);
    CHECK(msg.find(path) != std::string::npos);
    CHECK(msg.find(expect) != std::string::npos);
    CHECK(msg.find('\n') == std::string::npos);
    CHECK(msg.size() < 600);
    return;
  }
  FAIL("load_checkpoint accepted ", path);
}

// A model of `spec` on MNIST's input saved as a checkpoint (weights as initialized); with
// `quantized`, prepared for 8-bit QAT and calibrated on a few real batches first.
std::string checkpoint_of(const TempDir& dir, const std::string& name, const std::string& spec, bool quantized) {
  Rng rng(3);
  auto model = build_model(spec, {1, 28, 28}, rng);
  TrainConfig cfg;
  cfg.data_dir = mnist_dir();
  cfg.model = spec;
  if (quantized) {
    const QatConfig q;
    const Dataset train = load_dataset("mnist", true, mnist_dir()).slice(0, 256);
    DataLoader loader(train, {.batch_size = 64, .shuffle = false, .norm = mnist_stats()});
    calibrate(*model, loader.images(), 4, q);
    cfg.qat = describe(q);
  }
  TrainState state;
  state.rng_state = Rng(1).state();
  save_checkpoint(dir / name, cfg, {1, 28, 28}, *model, nullptr, state);
  return dir / name;
}

}  // namespace

TEST_CASE("eval: a float, quantized or int8 model whose outputs are not the dataset's classes is refused by name") {
  TempDir dir;
  const Cli cli(dir);
  const std::string data = " --data-dir " + mnist_dir() + " --limit 300";
  for (const char* spec : {"flatten-linear(12)", "flatten-linear(1000)", "flatten-linear(3)", "flatten"}) {
    for (bool quantized : {false, true}) {
      if (quantized && std::string(spec) == "flatten") continue;  // nothing to quantize
      CAPTURE(spec);
      CAPTURE(quantized);
      const std::string path = checkpoint_of(dir, "m.h5", spec, quantized);
      CHECK(cli("eval --model " + path + data) == 1);
      const std::string line = cli.first_error_line();
      INFO(line);
      CHECK(line.find(path) != std::string::npos);
      CHECK(line.find("10 classes") != std::string::npos);
      if (!quantized) continue;
      // The same model exported: the integer engine's file is refused as well.
      TrainCheckpoint ck = load_train_checkpoint(path);
      Int8Model m = export_int8(*ck.model, ck.input_shape, mnist_stats());
      m.dataset = "mnist";
      const std::string int8 = dir / "m.int8.h5";
      save_int8(m, int8);
      CHECK(cli("eval --model " + int8 + data) == 1);
      CHECK(cli.first_error_line().find(int8) != std::string::npos);
      CHECK(cli.first_error_line().find("10 classes") != std::string::npos);
      CHECK(cli("eval --model " + path + " --compare " + int8 + data) == 1);
    }
  }
}

TEST_CASE("checkpoint: a spec or input shape that would allocate gigabytes is refused before allocating") {
  TempDir dir;
  const std::string good = good_checkpoint(dir);
  auto with_spec = [&](const std::string& name, const std::string& spec) {
    const std::string p = copy_of(good, dir / name);
    h5edit::set(p, "/", "model_spec", spec);
    return p;
  };
  refused(with_spec("linear.h5", "flatten-linear(999999999)-relu-linear(128)-relu-linear(10)"),
          "CRAYON_MAX_PARAMETERS");
  refused(with_spec("conv.h5", "conv(999999999,5)-flatten-linear(10)"), "CRAYON_MAX_PARAMETERS");
  refused(with_spec("pad.h5", "conv(8,1,pad=60000)-flatten-linear(10)"), "CRAYON_MAX_ACTIVATION_BYTES");
  // Each dimension within the loader's bound, the product far beyond any machine.
  const std::string shape = copy_of(good, dir / "shape.h5");
  h5edit::set(shape, "/", "input_shape", std::vector<int64_t>{4096, 65536, 65536});
  refused(shape, "CRAYON_MAX_ACTIVATION_BYTES");
  // 200,000 layers (a QAT checkpoint of this spec kept eval busy for minutes): refused at
  // once, and the error quotes only a stretch of the spec.
  std::string long_spec = "flatten";
  for (int i = 0; i < 200000; ++i) long_spec += "-relu";
  long_spec += "-linear(10)";
  const std::string layers = with_spec("layers.h5", long_spec);
  h5edit::set(layers, "/", "quantized", int64_t(1));
  h5edit::set(layers, "/", "config.qat", describe(QatConfig{}));
  refused(layers, "CRAYON_MAX_LAYERS");
}

TEST_CASE("limits: the environment raises them for one run, and a batch beyond the activation limit is refused") {
  TempDir dir;
  const Cli cli(dir);
  const std::string good = good_checkpoint(dir);
  // 1001 layers: over the default limit of 1000, accepted with CRAYON_MAX_LAYERS=2000.
  std::string spec = "flatten";
  for (int i = 0; i < 999; ++i) spec += "-relu";
  spec += "-linear(10)";
  const std::string train = "train --data-dir " + mnist_dir() + " --epochs 1 --train-limit 64 --test-limit 10 -q --out " +
                            (dir / "long.h5") + " --model '" + spec + "'";
  CHECK(cli(train) == 2);
  CHECK(cli.first_error_line().find("1001 layers is too many (the limit is 1000; raise it with CRAYON_MAX_LAYERS=N)") !=
        std::string::npos);
  CHECK(cli("CRAYON_MAX_LAYERS=2000 " + train) == 0);
  CHECK(cli("CRAYON_MAX_LAYERS=lots " + train) == 1);
  CHECK(cli.first_error_line().find("CRAYON_MAX_LAYERS: expected a positive integer, found 'lots'") != std::string::npos);

  // mlp: the input (784 floats, 3136 bytes) is its largest activation. With room for 7 of
  // them, eval runs in batches of 7 and scores the same; training with 64 is refused.
  const std::string limit = "CRAYON_MAX_ACTIVATION_BYTES=" + std::to_string(7 * 784 * 4) + " ";
  const std::string eval = "eval --json --data-dir " + mnist_dir() + " --limit 200 --model " + good;
  REQUIRE(cli(eval) == 0);
  const std::string whole = cli.output();
  REQUIRE(cli(limit + eval) == 0);
  CHECK(cli.output() == whole);
  CHECK(cli(limit + "train --resume " + good + " --epochs 2 -q") == 1);
  CHECK(cli.first_error_line().find("--batch-size: a batch of 64") != std::string::npos);
  CHECK(cli.first_error_line().find("at most 7 fit") != std::string::npos);
}

TEST_CASE("checkpoint: impossible epoch, step and generator state are refused, and resume checks step against epoch") {
  TempDir dir;
  const std::string good = good_checkpoint(dir);
  auto with = [&](const std::string& name, const std::string& key, auto value) {
    const std::string p = copy_of(good, dir / name);
    h5edit::set(p, "/", key, value);
    return p;
  };
  refused(with("step_max.h5", "step", std::numeric_limits<int64_t>::max()), "step");
  refused(with("step_neg.h5", "step", int64_t(-1)), "step");
  refused(with("epoch_min.h5", "epoch", std::numeric_limits<int64_t>::min()), "epoch");
  refused(with("epoch_neg.h5", "epoch", int64_t(-1)), "epoch");
  refused(with("epoch_big.h5", "epoch", int64_t(5)), "epoch in [0, config.epochs = 1]");
  refused(with("rng_zero.h5", "rng_state", std::vector<int64_t>{0, 0, 0, 0}), "rng_state all zero");

  // One epoch of 512 images in batches of 64 is 8 steps; 9 loads but cannot resume.
  const std::string step9 = with("step9.h5", "step", int64_t(9));
  CHECK_NOTHROW(load_train_checkpoint(step9));
  TrainRun resume = small_run(dir / "out.h5");
  resume.resume = step9;
  resume.config.epochs = 2;
  try {
    run_training(resume);
    FAIL("resumed from a step count that is not a whole number of epochs");
  } catch (const std::runtime_error& e) {
    const std::string msg = e.what();
    INFO(msg);
    CHECK(msg.find(step9) != std::string::npos);
    CHECK(msg.find("expected step = epoch x 8 steps per epoch = 8, found step 9") != std::string::npos);
  }
  CHECK_FALSE(fs::exists(dir / "out.h5"));
}

TEST_CASE("checkpoint: settings the flags would refuse are refused on load, naming the file and the setting") {
  TempDir dir;
  const std::string good = good_checkpoint(dir);
  int n = 0;
  auto check = [&](const std::string& key, auto value, const std::string& expect) {
    CAPTURE(key);
    const std::string p = copy_of(good, dir / str("bad", n++, ".h5"));
    h5edit::set(p, "/", "config." + key, value);
    refused(p, "config." + key + ": " + expect);
  };
  check("batch_size", int64_t(0), "expected an integer in [1, 2147483648], got 0");
  check("epochs", int64_t(-3), "expected an integer in [1, 1000000], got -3");
  check("augment", int64_t(5), "expected -1, 0 or 1, got 5");
  check("nesterov", int64_t(7), "expected 0 or 1, got 7");
  check("l1", -0.5, "expected a finite number >= 0, got -0.5");
  check("clip_grad_norm", std::nan(""), "expected a finite number >= 0, got nan");
  check("qat_start_epoch", int64_t(-1), "expected an integer >= 0, got -1");
  check("train_limit", int64_t(-2), "expected an integer >= 0, got -2");
  check("optimizer", "rmsprop", "expected one of sgd, adam, adamw, got 'rmsprop'");
  check("lr_schedule", "sometimes", "");
  check("qat", "weight_bits=99", "");
  check("update_bits", int64_t(1), "expected 0 (off) or 2..32, got 1");
  // None of those messages blames a flag the user never passed.
  const std::string p = copy_of(good, dir / "flag.h5");
  h5edit::set(p, "/", "config.batch_size", int64_t(0));
  try {
    load_train_checkpoint(p);
  } catch (const std::runtime_error& e) {
    CHECK(std::string(e.what()).find("--") == std::string::npos);
  }
}

TEST_CASE("resume: a missing optimizer buffer is refused, naming the file, instead of restarting its state") {
  TempDir dir;
  const std::string good = good_checkpoint(dir);  // SGD with momentum 0.9: momentum.i for every parameter
  const std::string bad = copy_of(good, dir / "bad.h5");
  h5edit::remove(bad, "optimizer/momentum.2");
  TrainRun resume = small_run(dir / "out.h5");
  resume.resume = bad;
  resume.config.epochs = 2;
  try {
    run_training(resume);
    FAIL("resumed without momentum.2");
  } catch (const std::runtime_error& e) {
    const std::string msg = e.what();
    INFO(msg);
    CHECK(msg.find(bad) != std::string::npos);
    CHECK(msg.find("missing entry \"momentum.2\"") != std::string::npos);
  }
  // The good file resumes.
  resume.resume = good;
  CHECK(run_training(resume).size() == 1);
}

TEST_CASE("cli: --threads is bounded, empty paths and a zero QAT warm-up are usage errors") {
  TempDir dir;
  const Cli cli(dir);
  for (const std::string& cmd : std::initializer_list<std::string>{"train", "eval --model x.h5", "quantize --model x.h5"}) {
    CAPTURE(cmd);
    CHECK(cli(cmd + " --threads 100000") == 2);
    CHECK(cli.first_error_line().find("--threads: expected at most " + std::to_string(max_threads())) !=
          std::string::npos);
  }
  CHECK(cli("train --threads 0") == 2);
  CHECK(cli("train --resume ''") == 2);
  CHECK(cli.first_error_line().find("--resume: expected a file path, got ''") != std::string::npos);
  CHECK(cli("train --out ''") == 2);
  CHECK(cli.first_error_line().find("--out: expected a file path, got ''") != std::string::npos);
  CHECK(cli("export --model x.h5 --out ''") == 2);
  CHECK(cli("train --qat --qat-warmup 0") == 2);
  CHECK(cli.first_error_line().find("--qat-warmup: expected at least 1 step") != std::string::npos);
  CHECK(cli("train --qat --qat-config warmup=0") == 2);
  CHECK(cli.first_error_line().find("--qat-config: expected at least 1 step") != std::string::npos);
  CHECK_FALSE(fs::exists(dir / "model.h5"));
}

TEST_CASE("cli: sweep's --jobs is bounded like --threads (a process each), and bad lists name the flag") {
  TempDir dir;
  const Cli cli(dir);
  CHECK(cli("sweep --jobs 100000 --dir " + (dir / "s")) == 2);
  CHECK(cli.first_error_line().find("--jobs: expected at most " + std::to_string(max_threads())) != std::string::npos);
  CHECK(cli("sweep --bits 4,9 --dir " + (dir / "s")) == 2);
  CHECK(cli.first_error_line().find("--bits: expected widths in 2..8, got 9") != std::string::npos);
  CHECK(cli("sweep --regs none,l3 --dir " + (dir / "s")) == 2);
  CHECK(cli.first_error_line().find("--regs: expected some of none, l1, l2, kure, gradl1, got 'l3'") != std::string::npos);
  CHECK(cli("sweep --l2 0.001,x --dir " + (dir / "s")) == 2);
  CHECK(cli("sweep --kure 0 --dir " + (dir / "s")) == 2);
  CHECK(cli.first_error_line().find("--kure: expected positive strengths, got 0") != std::string::npos);
  CHECK(cli("sweep --grad-l1 -1 --dir " + (dir / "s")) == 2);
  CHECK(cli.first_error_line().find("--grad-l1: expected positive strengths, got -1") != std::string::npos);
  CHECK_FALSE(fs::exists(dir / "s"));
}

TEST_CASE("cli: a flag or value with a newline in it still gives a one-line error (found by fuzz_cli)") {
  // tests/fuzz/corpus/fuzz_cli/regression-newline-in-option: Boost's message quoted the
  // option as typed, newline and all.
  CHECK(std::string(UsageError("unrecognised option '--a\nb'").what()) == "unrecognised option '--a\\nb'");
  TempDir dir;
  const Cli cli(dir);
  CHECK(cli("train \"$(printf -- '--mo\\ndel')\" lenet5") == 2);
  const std::string err = slurp(dir / "stderr.txt");
  INFO(err);
  CHECK(std::count(err.begin(), err.end(), '\n') == 2);  // the error and the usage line
  CHECK(err.find("crayon train: unrecognised option '--mo\\ndel'") == 0);
}

TEST_CASE("cli: a flag or value holding one of Boost's message placeholders is refused instead of hanging (found by fuzz_cli)") {
  // tests/fuzz/corpus/fuzz_cli/regression-placeholder-in-option: Boost.Program_options 1.74
  // substitutes '%original_token%' into its own message forever.
  TempDir dir;
  const Cli cli(dir);
  for (const char* args : {"analyze '--%original_token%sitivity-bit' 3,4", "train --epochs '%value%'",
                           "plot '%canonical_option%'", "fetch '--%option%'", "sweep --dir 'a%prefix%b'"}) {
    INFO(args);
    CHECK(cli(args) == 2);
    const std::string err = slurp(dir / "stderr.txt");
    INFO(err);
    CHECK(err.find("(the option parser reserves it)") != std::string::npos);
  }
}
