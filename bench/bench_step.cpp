// The time of one training step, float and QAT side by side: two copies of the same model
// (same initialization, the same sequence of batches), stepped in turn in one process:
// --block steps of float, then as many of QAT, and so on. A noisy neighbour that slows the
// machine for a second slows both alike, so the ratio of the two holds where whole-epoch
// timings (bench/compare_train.py --qat) scatter by 2x. The float copy first runs 5 untimed
// steps (caches, pools; QAT's observer warm-up counts from its own first step), and the first
// step of each block, which finds the caches full of the other model, is not counted. A
// step is what `crayon train` does: the next batch from the loader, forward, cross-entropy,
// backward, the gradient norm, SGD with momentum. QAT is `crayon train --qat`'s default
// configuration (quant/qat_config.h: W8A8, per-channel weights, minmax observers watching
// the first 200 steps, then frozen); the steps are reported apart for the warm-up and after.
//
//   build/bench/bench_step [--model mlp|lenet5|SPEC] [--steps 469] [--threads 2] [--batch 128]
//       [--block 10] [--data-dir DIR]
// Prints one JSON line: the medians in ms per phase and their ratios, the medians of the
// step's parts (batch, forward with the loss, backward, gradient norm with the update) as
// [float, QAT], and each model's forward time per layer (float_layers_ms, qat_layers_ms).
// The counted steps only, everywhere.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/ops.h"
#include "core/parallel.h"
#include "data/dataset.h"
#include "data/loader.h"
#include "nn/spec.h"
#include "optim/clip.h"
#include "optim/sgd.h"
#include "quant/qat.h"

using namespace crayon;

namespace {

struct Run {
  std::shared_ptr<Sequential> model;
  std::unique_ptr<SGD> opt;
  std::unique_ptr<DataLoader> loader;
  std::vector<Variable> params;
  std::vector<std::vector<double>> layer_ms;  // per layer of the Sequential, per counted step

  // The step's time in ms, and its parts: batch, forward + loss, backward, norm + update.
  // Its layers' times are kept if `counted`.
  double step(double part[4], bool counted) {
    using clock = std::chrono::steady_clock;
    const auto t0 = clock::now();
    Batch b;
    if (!loader->next(b)) {
      loader->start_epoch(0);
      loader->next(b);
    }
    const auto t1 = clock::now();
    opt->zero_grad();
    // The Sequential's layers one by one (what its forward does), each timed.
    Variable y(b.images);
    layer_ms.resize(model->size());
    for (size_t l = 0; l < model->size(); ++l) {
      const auto l0 = clock::now();
      y = (*model)[l](y);
      if (counted) layer_ms[l].push_back(std::chrono::duration<double, std::milli>(clock::now() - l0).count());
    }
    Variable loss = cross_entropy(y, b.labels);
    (void)loss.item();
    const auto t2 = clock::now();
    loss.backward();
    const auto t3 = clock::now();
    clip_grad_norm(params, std::numeric_limits<float>::infinity());
    opt->step();
    const auto t4 = clock::now();
    auto ms = [](auto a, auto b) { return std::chrono::duration<double, std::milli>(b - a).count(); };
    part[0] = ms(t0, t1), part[1] = ms(t1, t2), part[2] = ms(t2, t3), part[3] = ms(t3, t4);
    return ms(t0, t4);
  }
};

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

[[noreturn]] void usage(const char* why) {
  std::fprintf(stderr,
               "bench_step: %s\nusage: bench_step [--model mlp|lenet5|SPEC] [--steps N] [--threads N] [--batch N] "
               "[--block N] [--data-dir DIR]\n",
               why);
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) try {
  std::string model = "mlp", data_dir;
  int64_t steps = 469, batch = 128, block = 10;
  int threads = 2;
  for (int i = 1; i < argc; ++i) {
    auto value = [&] {
      if (i + 1 >= argc) usage((std::string(argv[i]) + " needs a value").c_str());
      return std::string(argv[++i]);
    };
    const std::string a = argv[i];
    if (a == "--model") model = value();
    else if (a == "--data-dir") data_dir = value();
    else if (a == "--steps") steps = std::stoll(value());
    else if (a == "--batch") batch = std::stoll(value());
    else if (a == "--block") block = std::stoll(value());
    else if (a == "--threads") threads = std::stoi(value());
    else usage(("unknown option " + a).c_str());
  }
  if (steps < 1 || batch < 1 || threads < 1 || block < 2) usage("--steps, --batch, --threads >= 1 and --block >= 2 expected");
  set_num_threads(threads);
  const Dataset train = load_dataset("mnist", true, data_dir);
  const Shape input{train.channels(), train.height(), train.width()};
  const QatConfig qat;

  Run runs[2];
  for (int k = 0; k < 2; ++k) {
    Rng rng(1);
    runs[k].model = build_model(model, input, rng);
    if (k == 1) prepare_qat(*runs[k].model, qat);
    runs[k].model->train();
    runs[k].params = runs[k].model->parameters();
    runs[k].opt = std::make_unique<SGD>(runs[k].params, SgdOptions{.lr = 0.01f, .momentum = 0.9f});
    runs[k].loader = std::make_unique<DataLoader>(
        train, LoaderOptions{.batch_size = batch, .shuffle = true, .seed = 1, .norm = mnist_stats()});
    runs[k].loader->start_epoch(0);
  }
  double part[4];
  for (int w = 0; w < 5; ++w) runs[0].step(part, false);  // caches and pools; QAT's warm-up counts from 0

  std::vector<double> t[2][2];      // [float, qat][warm-up, frozen]
  std::vector<double> parts[2][4];  // [float, qat][batch, forward, backward, update]
  for (int64_t s0 = 0; s0 < steps; s0 += block)
    for (int k = 0; k < 2; ++k)
      for (int64_t s = s0; s < std::min(steps, s0 + block); ++s) {
        const double ms = runs[k].step(part, s > s0);
        if (s == s0) continue;
        t[k][s < qat.warmup_steps ? 0 : 1].push_back(ms);
        for (int p = 0; p < 4; ++p) parts[k][p].push_back(part[p]);
      }
  std::vector<double> all[2];
  for (int k = 0; k < 2; ++k)
    for (int p = 0; p < 2; ++p) all[k].insert(all[k].end(), t[k][p].begin(), t[k][p].end());
  auto ratio = [](double a, double b) { return b > 0 ? a / b : 0.0; };
  const double f0 = median(t[0][0]), q0 = median(t[1][0]), f1 = median(t[0][1]), q1 = median(t[1][1]);
  const double fa = median(all[0]), qa = median(all[1]);
  std::printf(
      "{\"model\": \"%s\", \"threads\": %d, \"batch\": %lld, \"steps\": %lld, \"block\": %lld, \"float_ms\": %.4f, \"qat_ms\": %.4f, "
      "\"qat_over_float\": %.3f, \"warmup_float_ms\": %.4f, \"warmup_qat_ms\": %.4f, \"warmup_ratio\": %.3f, "
      "\"frozen_float_ms\": %.4f, \"frozen_qat_ms\": %.4f, \"frozen_ratio\": %.3f, \"parts_ms\": {",
      model.c_str(), threads, (long long)batch, (long long)steps, (long long)block, fa, qa, ratio(qa, fa), f0, q0, ratio(q0, f0), f1, q1,
      ratio(q1, f1));
  const char* names[4] = {"batch", "forward", "backward", "update"};
  for (int p = 0; p < 4; ++p)
    std::printf("%s\"%s\": [%.4f, %.4f]", p ? ", " : "", names[p], median(parts[0][p]), median(parts[1][p]));
  std::printf("}");
  for (int k = 0; k < 2; ++k) {
    std::printf(", \"%s_layers_ms\": {", k ? "qat" : "float");
    for (size_t l = 0; l < runs[k].model->size(); ++l)
      std::printf("%s\"%zu %s\": %.4f", l ? ", " : "", l, (*runs[k].model)[l].spec().c_str(),
                  median(runs[k].layer_ms[l]));
    std::printf("}");
  }
  std::printf("}\n");
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "bench_step: %s\n", e.what());
  return 1;
}
