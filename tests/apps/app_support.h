#pragma once
// What the apps/ tests share: a temporary folder, a small real-MNIST training run, and
// checkpoint comparison.
#include <doctest/doctest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "apps/train_checkpoint.h"
#include "apps/trainer.h"
#include "tests/support/temp_dir.h"

namespace crayon {

namespace fs = std::filesystem;

inline TrainRun small_run(const std::string& out, const std::string& model = "mlp") {
  TrainRun run;
  run.config.dataset = "mnist";
  run.config.data_dir = std::string(CRAYON_SOURCE_DIR) + "/data/mnist";
  run.config.model = model;
  run.config.epochs = 2;
  run.config.batch_size = 64;
  run.config.lr = 0.05;
  run.config.train_limit = 3000;
  run.config.test_limit = 1000;
  run.out = out;
  run.quiet = true;
  run.threads = 2;
  return run;
}

// Same dtype, shape and bytes.
inline bool same_tensor(const Tensor& a, const Tensor& b) {
  if (a.dtype() != b.dtype() || a.shape() != b.shape()) return false;
  switch (a.dtype()) {
    case DType::f32: return std::memcmp(a.data(), b.data(), a.nbytes()) == 0;
    case DType::i8: return std::memcmp(a.data_as<int8_t>(), b.data_as<int8_t>(), a.nbytes()) == 0;
    case DType::i32: return std::memcmp(a.data_as<int32_t>(), b.data_as<int32_t>(), a.nbytes()) == 0;
  }
  return false;
}

inline std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), {}};
}

inline void check_same_weights(const std::string& a, const std::string& b) {
  TrainCheckpoint x = load_train_checkpoint(a), y = load_train_checkpoint(b);
  CHECK(x.state.step == y.state.step);
  CHECK(x.state.epoch == y.state.epoch);
  auto px = x.model->named_parameters(), py = y.model->named_parameters();
  REQUIRE(px.size() == py.size());
  for (size_t i = 0; i < px.size(); ++i) {
    INFO(px[i].first);
    CHECK(same_tensor(px[i].second.value(), py[i].second.value()));
  }
  auto bx = x.model->named_buffers(), by = y.model->named_buffers();
  for (size_t i = 0; i < bx.size(); ++i) CHECK(same_tensor(bx[i].second, by[i].second));
  REQUIRE(x.optimizer_state.size() == y.optimizer_state.size());
  for (size_t i = 0; i < x.optimizer_state.size(); ++i)
    CHECK(same_tensor(x.optimizer_state[i].second, y.optimizer_state[i].second));
}


// Starts argv[0] with these arguments in a child process (stdout to `log` if given) and
// returns its pid; wait_ok waits for it and says whether it exited 0.
inline pid_t spawn(std::vector<std::string> args, const std::string& log = "") {
  std::fflush(nullptr);  // nothing buffered here is written twice by the child
  const pid_t pid = fork();
  if (pid == 0) {
    if (!log.empty() && !std::freopen(log.c_str(), "w", stdout)) _exit(126);
    std::vector<char*> argv;
    for (auto& s : args) argv.push_back(s.data());
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  return pid;
}

inline bool wait_ok(pid_t pid) {
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

// Runs the crayon binary (CRAYON_BINARY) with a shell argument string, stdout to `out` and
// stderr to `err` in a folder; returns the exit status. A leading "NAME=value ..." in args
// sets environment variables for that run.
struct Cli {
  std::string out, err;
  explicit Cli(const TempDir& dir) : out(dir / "stdout.txt"), err(dir / "stderr.txt") {}
  int operator()(std::string args) const {
    std::string env;
    while (true) {
      const size_t sp = args.find(' '), eq = args.find('=');
      if (sp == std::string::npos || eq == std::string::npos || eq > sp || args.find('-') < eq) break;
      env += args.substr(0, sp + 1);
      args.erase(0, sp + 1);
    }
    const int status =
        std::system((env + std::string(CRAYON_BINARY) + " " + args + " > " + out + " 2> " + err).c_str());
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }
  std::string first_error_line() const {
    std::ifstream f(err);
    std::string line;
    std::getline(f, line);
    return line;
  }
  std::string output() const { return slurp(out); }
};

}  // namespace crayon
