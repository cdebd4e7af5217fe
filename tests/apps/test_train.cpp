// End-to-end training on real MNIST (the copy in data/mnist), checkpoints and resume.
#include <doctest/doctest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <thread>

#include "apps/train_checkpoint.h"
#include "apps/trainer.h"
#include "core/check.h"
#include "core/h5io.h"
#include "core/rng.h"
#include "nn/spec.h"
#include "optim/kure.h"
#include "tests/apps/app_support.h"
#include "tests/support/tensors.h"

using namespace crayon;
namespace fs = std::filesystem;

TEST_CASE("train: lenet5 learns real MNIST from 3000 images in two epochs") {
  TempDir dir;
  TrainRun run = small_run(dir / "lenet.h5", "lenet5");
  const auto records = run_training(run);
  REQUIRE(records.size() == 2);
  CHECK(records[1].train_loss < records[0].train_loss);
  // Chance is 10 %; a few thousand images give ~90 % with this net.
  CHECK(records[1].test_acc > 0.85);
  CHECK(records[1].data_bits > 0);
  CHECK(records[1].model_bits > 0);
  TrainCheckpoint ck = load_train_checkpoint(run.out);
  CHECK(ck.state.epoch == 2);
  CHECK(ck.config.model == "lenet5");
  CHECK(ck.model->spec() == preset_spec("lenet5"));
}

TEST_CASE("train --kure: every layer's weight kurtosis ends nearer 1.8 than without it and accuracy is kept") {
  TempDir dir;
  auto kurtoses = [](const std::string& path) {
    std::vector<double> k;
    for (const auto& [name, v] : load_train_checkpoint(path).model->named_parameters())
      if (v.ndim() >= 2) k.push_back(kurtosis(v).item());
    return k;
  };
  TrainRun plain = small_run(dir / "plain.h5");
  const double plain_acc = run_training(plain).back().test_acc;
  TrainRun kure = small_run(dir / "kure.h5");
  kure.config.kure = 0.1;
  const double kure_acc = run_training(kure).back().test_acc;
  CHECK(load_train_checkpoint(kure.out).config.kure == 0.1);
  const std::vector<double> a = kurtoses(plain.out), b = kurtoses(kure.out);
  REQUIRE(a.size() == 3);
  for (size_t i = 0; i < a.size(); ++i) {
    MESSAGE("layer ", i, ": kurtosis ", a[i], " without KURE, ", b[i], " with");
    CHECK(std::fabs(b[i] - 1.8) < std::fabs(a[i] - 1.8));
  }
  CHECK(kure_acc > plain_acc - 0.03);
}

TEST_CASE("train --grad-l1: trains with the Hessian-vector term and is refused under QAT") {
  TempDir dir;
  TrainRun run = small_run(dir / "g.h5");
  run.config.epochs = 1;
  run.config.grad_l1 = 1e-4;  // the penalty sums |g| over 235k weights: small strengths suffice
  const auto records = run_training(run);
  CHECK(records.back().test_acc > 0.75);  // ~80 % without it
  CHECK(load_train_checkpoint(run.out).config.grad_l1 == 1e-4);
  // The term changes the training: the same run without it ends with other weights.
  TrainRun plain = small_run(dir / "p.h5");
  plain.config.epochs = 1;
  run_training(plain);
  const auto a = load_train_checkpoint(run.out).model->named_parameters();
  const auto b = load_train_checkpoint(plain.out).model->named_parameters();
  double diff = 0;
  for (size_t i = 0; i < a.size(); ++i)
    for (int64_t k = 0; k < a[i].second.numel(); ++k)
      diff = std::max(diff, double(std::fabs(a[i].second.value().data()[k] - b[i].second.value().data()[k])));
  CHECK(diff > 1e-3);
  const Cli cli(dir);
  CHECK(cli("train --qat --grad-l1 0.01 --out " + (dir / "q.h5")) == 2);
  CHECK(cli.first_error_line().find("--grad-l1: expected float training") != std::string::npos);
  CHECK(cli("train --kure 0.1 --grad-l1 0.01 --out " + (dir / "k.h5")) == 2);
  CHECK(cli.first_error_line().find("--grad-l1: expected one of gradient L1 and KURE") != std::string::npos);
}

TEST_CASE("train: an interrupted run resumed from its checkpoint ends with the same weights") {
  TempDir dir;
  TrainRun full = small_run(dir / "full.h5");
  full.config.model = "flatten-linear(64)-relu-dropout(0.2)-linear(10)";  // dropout: its RNG must resume too
  full.config.optimizer = "adam";
  full.config.lr = 1e-3;
  full.config.lr_schedule = "warmup:20+cosine";
  full.config.epochs = 3;
  run_training(full);

  TrainRun first = full;
  first.out = dir / "part.h5";
  first.stop_after = 1;
  run_training(first);
  TrainRun rest = full;
  rest.out = dir / "part.h5";
  rest.resume = dir / "part.h5";
  rest.config = TrainConfig{};  // settings come from the checkpoint
  rest.config.epochs = 3;
  run_training(rest);
  check_same_weights(full.out, rest.out);
}

TEST_CASE("train: the crayon binary killed mid-run resumes to the uninterrupted result") {
  TempDir dir;
  const std::string bin = CRAYON_BINARY;
  const std::string data = std::string(CRAYON_SOURCE_DIR) + "/data/mnist";
  auto args = [&](const std::string& out, const char* epochs) {
    return std::vector<std::string>{bin,           "train",        "--model",    "mlp", "--epochs", epochs,
                                    "--train-limit", "4000",       "--test-limit", "500", "--data-dir", data,
                                    "--out",         out,           "--quiet",    "--lr", "0.05"};
  };
  REQUIRE(wait_ok(spawn(args(dir / "full.h5", "4"))));

  // Kill the run as soon as its first checkpoint exists (somewhere in epoch 2).
  const std::string part = dir / "part.h5";
  const pid_t pid = spawn(args(part, "4"));
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (!fs::exists(part) && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  kill(pid, SIGKILL);
  int status = 0;
  waitpid(pid, &status, 0);
  REQUIRE(fs::exists(part));
  const int64_t done = load_train_checkpoint(part).state.epoch;
  CHECK(done >= 1);
  CHECK(done < 4);  // it really was interrupted (4 epochs take far longer than the poll)
  // No temporary file is left behind that could be mistaken for a checkpoint.
  for (auto& e : fs::directory_iterator(dir.path())) CHECK(e.path().extension() == ".h5");

  std::vector<std::string> resume{bin, "train", "--resume", part, "--epochs", "4", "--out", part, "--quiet"};
  REQUIRE(wait_ok(spawn(resume)));
  check_same_weights(dir / "full.h5", part);
}

TEST_CASE("train: killed with SIGKILL 20 times, half of them while a checkpoint is being written, it still ends bit for bit") {
  // Each round starts the run (fresh, or resumed from what is on disk), lets it write one
  // new checkpoint (so the run advances whatever the build's speed), then kills it: on odd
  // rounds after a further random delay, on even rounds the moment the next temporary
  // checkpoint file appears (a write in flight). After every kill the checkpoint on disk
  // must load.
  TempDir dir;
  const std::string bin = CRAYON_BINARY;
  const std::string data = std::string(CRAYON_SOURCE_DIR) + "/data/mnist";
  const char* epochs = "60";
  auto fresh = [&](const std::string& out) {
    return std::vector<std::string>{bin, "train", "--model", "mlp", "--epochs", epochs, "--train-limit", "500",
                                    "--test-limit", "50", "--batch-size", "50", "--data-dir", data, "--out", out,
                                    "--quiet", "--lr", "0.05", "--threads", "2"};
  };
  REQUIRE(wait_ok(spawn(fresh(dir / "full.h5"))));
  const std::string part = dir / "part.h5";
  auto writing = [&] {
    for (auto& e : fs::directory_iterator(dir.path()))
      if (e.path().filename().string().rfind("part.h5.tmp.", 0) == 0) return true;
    return false;
  };
  auto written = [&] {  // when the checkpoint was last replaced (min: not there)
    std::error_code ec;
    const auto t = fs::last_write_time(part, ec);
    return ec ? fs::file_time_type::min() : t;
  };
  auto running = [](pid_t pid) { return waitpid(pid, nullptr, WNOHANG) == 0; };
  Rng rng(2026);
  int kills = 0, in_write = 0;
  bool finished = false;
  for (int round = 0; round < 40 && kills < 20 && !finished; ++round) {
    const auto before = written();
    const bool resume = fs::exists(part);
    const pid_t pid = spawn(resume ? std::vector<std::string>{bin, "train", "--resume", part, "--epochs", epochs,
                                                              "--out", part, "--quiet", "--threads", "2"}
                                   : fresh(part));
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
    bool alive = true;
    while ((alive = running(pid)) && written() == before && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    bool saw_write = false;
    if (alive && round % 2 == 0) {
      while ((alive = running(pid)) && !(saw_write = writing()) && std::chrono::steady_clock::now() < deadline)
        std::this_thread::yield();
    } else if (alive) {
      std::this_thread::sleep_for(std::chrono::milliseconds(rng.below(100)));
    }
    if (!alive) {  // it finished (or died) before the kill: reaped by running()
      finished = true;
      break;
    }
    kill(pid, SIGKILL);
    int status = 0;
    waitpid(pid, &status, 0);
    if (!WIFSIGNALED(status)) {
      finished = true;
      break;
    }
    ++kills;
    in_write += saw_write;
    CAPTURE(round);
    REQUIRE(fs::exists(part));
    CHECK_NOTHROW(load_train_checkpoint(part));
  }
  CHECK(kills >= 20);
  CHECK(in_write >= 5);  // some kills really landed inside a checkpoint write
  MESSAGE(str(kills, " kills, ", in_write, " of them while a temporary checkpoint file existed"));
  REQUIRE(fs::exists(part));
  REQUIRE(wait_ok(spawn({bin, "train", "--resume", part, "--epochs", epochs, "--out", part, "--quiet", "--threads",
                         "2"})));
  check_same_weights(dir / "full.h5", part);
  // The killed writers' temporaries were cleaned up by the runs after them.
  for (auto& e : fs::directory_iterator(dir.path())) CHECK(e.path().extension() == ".h5");
}

TEST_CASE("train: the same seed, data and threads give the same bytes, float, QAT and the int8 export") {
  // Run twice with the same paths (checkpoints record their --init and source files), keeping
  // the first run's files aside.
  TempDir dir;
  const Cli cli(dir);
  const std::string common = " --train-limit 2000 --test-limit 300 --threads 2 -q --data-dir " +
                             std::string(CRAYON_SOURCE_DIR) + "/data/mnist";
  const std::vector<std::string> files{"float.h5", "qat.h5", "m.int8.h5"};
  fs::create_directories(dir / "first");
  for (int run = 0; run < 2; ++run) {
    REQUIRE(cli("train --model lenet5 --epochs 1 --seed 7 --out " + (dir / "float.h5") + common) == 0);
    REQUIRE(cli("train --qat --weight-bits 4 --act-bits 4 --rounding stochastic --epochs 1 --seed 7 --init " +
                (dir / "float.h5") + " --out " + (dir / "qat.h5") + common) == 0);
    REQUIRE(cli("export --model " + (dir / "qat.h5") + " --out " + (dir / "m.int8.h5")) == 0);
    if (run == 0)
      for (const std::string& f : files) fs::copy_file(dir / f, dir / ("first/" + f));
  }
  for (const std::string& f : files) {
    CAPTURE(f);
    const std::string a = slurp(dir / ("first/" + f)), b = slurp(dir / f);
    CHECK(a.size() > 1000);
    CHECK(a == b);
  }
}

TEST_CASE("train --detect-anomaly: a blow-up is stopped at the first Inf, naming the step, the op and the layer") {
  TempDir dir;
  const Cli cli(dir);
  const std::string args = "train --model mlp --epochs 1 --lr 1e9 --train-limit 2000 --test-limit 100 -q --data-dir " +
                           std::string(CRAYON_SOURCE_DIR) + "/data/mnist --out " + (dir / "m.h5");
  REQUIRE(cli(args + " --detect-anomaly") == 1);
  const std::string line = cli.first_error_line();
  INFO(line);
  CHECK(line.find("crayon train: anomaly at epoch 1, step ") == 0);
  CHECK(line.find("of op 'matmul' in layer ") != std::string::npos);
  CHECK(line.find("No checkpoint was written.") != std::string::npos);
  // Without it the loss check still stops the run, a step later or at the same one.
  REQUIRE(cli(args) == 1);
  CHECK(cli.first_error_line().find("crayon train: loss became ") == 0);
  CHECK(!fs::exists(dir / "m.h5"));
}

TEST_CASE("train: a full disk, an unwritable or missing folder: one line naming it, exit 1, the checkpoint untouched") {
  TempDir dir;
  const Cli cli(dir);
  const std::string data = " --data-dir " + std::string(CRAYON_SOURCE_DIR) + "/data/mnist";
  const std::string ck = dir / "ck.h5";
  REQUIRE(cli("train --model mlp --epochs 1 --train-limit 1000 --test-limit 100 -q --out " + ck + data) == 0);
  const std::string before = slurp(ck);
  REQUIRE(before.size() > 100000);
  auto untouched = [&] {
    CHECK(slurp(ck) == before);
    for (auto& e : fs::directory_iterator(dir.path()))  // no temporary left beside it
      CHECK(e.path().filename().string().find(".tmp.") == std::string::npos);
  };
  // A full disk: a 64 KiB file-size limit (ulimit -f counts 1 KiB blocks in bash, 512 B in sh),
  // resuming in place, so the failing write is the one replacing ck.h5.
  const std::string err = dir / "err.txt";
  const int status = std::system(("ulimit -f 64; " + std::string(CRAYON_BINARY) + " train --resume " + ck +
                                  " --epochs 2 --out " + ck + " -q 2> " + err).c_str());
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 1);
  std::string line;
  std::getline(std::ifstream(err) >> std::ws, line);
  INFO(line);
  CHECK(line.find("crayon train: " + ck) == 0);
  untouched();
  // An output folder that cannot exist (its parent is a file), and a missing data folder.
  CHECK(cli("train --resume " + ck + " --epochs 2 --out " + ck + "/sub/x.h5 -q") == 1);
  CHECK(cli.first_error_line().find(ck + "/sub/x.h5") != std::string::npos);
  untouched();
  CHECK(cli("train --model mlp --epochs 1 -q --out " + ck + " --data-dir " + (dir / "no-such-folder")) == 1);
  CHECK(cli.first_error_line().find(dir / "no-such-folder") != std::string::npos);
  untouched();
}

TEST_CASE("train: a diverging loss stops with epoch and step named, and the last checkpoint stays intact") {
  TempDir dir;
  TrainRun good = small_run(dir / "model.h5");
  good.config.epochs = 1;
  run_training(good);
  const std::string before = slurp(good.out);

  TrainRun bad = small_run(dir / "model.h5");
  bad.config.lr = 1e30;
  bad.config.momentum = 0;
  try {
    run_training(bad);
    FAIL("training with lr 1e30 should diverge");
  } catch (const std::runtime_error& e) {
    const std::string msg = e.what();
    INFO(msg);
    CHECK(msg.find("at epoch 1, step ") != std::string::npos);
    CHECK(msg.find("loss became") != std::string::npos);
  }
  CHECK(slurp(good.out) == before);
}

TEST_CASE("checkpoint: truncated, corrupted and foreign files are refused with the file named") {
  TempDir dir;
  TrainRun run = small_run(dir / "model.h5");
  run.config.epochs = 1;
  run.config.train_limit = 500;
  run_training(run);
  const std::string bytes = slurp(run.out);

  auto refused = [&](const std::string& path) {
    try {
      load_train_checkpoint(path);
    } catch (const std::exception& e) {
      const std::string msg = e.what();
      INFO(msg);
      CHECK(msg.find(path) != std::string::npos);
      return true;
    }
    return false;
  };
  const std::string truncated = dir / "truncated.h5";
  std::ofstream(truncated, std::ios::binary).write(bytes.data(), std::streamsize(bytes.size() / 2));
  CHECK(refused(truncated));
  const std::string garbage = dir / "garbage.h5";
  std::ofstream(garbage, std::ios::binary) << "this is not an HDF5 file at all";
  CHECK(refused(garbage));
  CHECK(refused(dir / "missing.h5"));
  // A valid HDF5 file that is not a crayon checkpoint.
  const std::string foreign = dir / "foreign.h5";
  {
    H5Writer w(foreign);
    w.write_tensor("x", Tensor::zeros({2}));
    w.commit();
  }
  CHECK(refused(foreign));
  // A checkpoint whose weight has the wrong shape.
  const std::string reshaped = dir / "reshaped.h5";
  {
    TrainCheckpoint ck = load_train_checkpoint(run.out);
    H5Writer w(reshaped);
    w.set_attr("/", "format", kCheckpointFormat);
    w.set_attr("/", "format_version", kCheckpointVersion);
    w.write_tensor("model/1/weight", Tensor::zeros({3, 3}));
    w.commit();
  }
  CHECK(refused(reshaped));
}

TEST_CASE("cli: bad flags and values exit 2 with one line naming the flag, bad files exit 1 naming the file") {
  TempDir dir;
  const Cli run(dir);
  auto first_line = [&] { return run.first_error_line(); };
  CHECK(run("--help") == 0);
  CHECK(run("train --help") == 0);
  CHECK(run("train --epochs abc") == 2);
  CHECK(first_line().find("--epochs") != std::string::npos);
  CHECK(run("train --epochs 0") == 2);
  CHECK(first_line().find("--epochs: expected an integer in [1, 1000000], got 0") != std::string::npos);
  CHECK(run("train --optimizer rmsprop") == 2);
  CHECK(first_line().find("--optimizer: expected one of sgd, adam, adamw, got 'rmsprop'") != std::string::npos);
  CHECK(run("train --model 'conv(6,5)-relu-foo'") == 2);
  CHECK(first_line().find("position 16: unknown layer 'foo'") != std::string::npos);
  CHECK(run("train --bogus") == 2);
  CHECK(run("frobnicate") == 2);
  CHECK(run("eval --model " + (dir / "missing.h5")) == 1);
  CHECK(first_line().find(dir / "missing.h5") != std::string::npos);
  CHECK(run("train --resume " + (dir / "missing.h5") + " --lr 0.1") == 2);
  CHECK(first_line().find("--lr: cannot be changed when resuming") != std::string::npos);
}
