// Inference throughput on the 10000 MNIST test images: crayon's fp32 forward pass (the QAT
// checkpoint's float weights) beside its integer engine (the exported int8 model), batch
// 256, median of several timed passes over the whole test set after one warm-up pass.
// fp32 is timed from normalized float batches (as PyTorch's peer, bench/torch_infer.py);
// int8 from raw pixels, its input quantization (a table lookup) included.
//
//   build/bench/bench_infer --checkpoint out/lenet5-qat.h5 --int8 out/lenet5.int8.h5 [--threads 2]
//       [--batch 256] [--runs 7] [--isa avx512vnni|avx2|portable]
// Prints one JSON line per configuration.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "apps/train_checkpoint.h"
#include "core/parallel.h"
#include "data/dataset.h"
#include "data/loader.h"
#include "quant/int8_export.h"
#include "quant/int8/gemm.h"
#include "quant/qat.h"

using namespace crayon;

namespace {

template <typename F>
double median_rate(int runs, int64_t images, F pass) {
  pass();  // warm-up: caches, thread pool, packed weights
  std::vector<double> rates;
  for (int r = 0; r < runs; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    pass();
    rates.push_back(double(images) / std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(rates.begin(), rates.end());
  return rates[rates.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  std::string checkpoint, int8_path, isa;
  int threads = 2, runs = 7;
  int64_t batch = 256;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--checkpoint") checkpoint = v;
    else if (k == "--int8") int8_path = v;
    else if (k == "--threads") threads = std::stoi(v);
    else if (k == "--batch") batch = std::stoll(v);
    else if (k == "--runs") runs = std::stoi(v);
    else if (k == "--isa") isa = v;
    else {
      std::fprintf(stderr, "bench_infer: unknown flag %s\n", k.c_str());
      return 2;
    }
  }
  if (checkpoint.empty() || int8_path.empty()) {
    std::fprintf(stderr, "usage: bench_infer --checkpoint Q.h5 --int8 M.int8.h5 [--threads N] [--batch B] [--runs R]\n");
    return 2;
  }
  try {
    set_num_threads(threads);
    if (!isa.empty()) set_int8_isa(parse_int8_isa(isa));
    TrainCheckpoint ck = load_train_checkpoint(checkpoint);
    const Int8Model int8 = load_int8(int8_path);
    const Dataset test = load_dataset(ck.config.dataset, false, ck.config.data_dir);
    const ChannelStats norm = dataset_stats(ck.config.dataset);
    std::shared_ptr<Sequential> fp32 = ck.quantized ? float_copy(*ck.model, ck.input_shape) : ck.model;
    fp32->eval();

    // Normalized float batches, made before timing.
    std::vector<Tensor> batches;
    DataLoader loader(test, {.batch_size = batch, .shuffle = false, .norm = norm});
    Batch b;
    while (loader.next(b)) batches.push_back(b.images.clone());

    const double fp32_rate = median_rate(runs, test.size(), [&] {
      NoGradGuard ng;
      for (const Tensor& x : batches) (*fp32)(Variable(x));
    });
    const double int8_rate = median_rate(runs, test.size(), [&] {
      for (int64_t begin = 0; begin < test.size(); begin += batch) {
        const int64_t n = std::min(batch, test.size() - begin);
        int8.forward(int8.quantize_images(test.image(begin), n));
      }
    });
    const char* model = ck.config.model.c_str();
    std::printf("{\"framework\": \"crayon\", \"model\": \"%s\", \"config\": \"fp32\", \"threads\": %d, \"batch\": %lld, "
                "\"images_per_s\": %.0f}\n",
                model, threads, (long long)batch, fp32_rate);
    std::printf("{\"framework\": \"crayon\", \"model\": \"%s\", \"config\": \"int8 (%s)\", \"threads\": %d, "
                "\"batch\": %lld, \"images_per_s\": %.0f, \"speedup_vs_fp32\": %.2f}\n",
                model, int8_isa_name(int8_isa()), threads, (long long)batch, int8_rate, int8_rate / fp32_rate);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_infer: %s\n", e.what());
    return 1;
  }
  return 0;
}
