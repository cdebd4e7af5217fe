// Framework overhead on the GEMM-bound ops: crayon's matmul and conv2d, forward +
// backward through autograd, beside raw cblas_sgemm calls on exactly the same GEMM
// shapes in the same run. Prints time per call (median of repeats), GFLOP/s and the
// overhead ratio. Usage: bench_ops [--threads N] [--reps R]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include <cblas.h>

#include "core/blas.h"
#include "core/ops.h"
#include "core/parallel.h"

using namespace crayon;
using Clock = std::chrono::steady_clock;

namespace {

// Median seconds per call of f over `reps` timed batches of `inner` calls, after warm-up.
double median_time(const std::function<void()>& f, int reps, int inner) {
  for (int i = 0; i < 3; ++i) f();
  std::vector<double> t;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = Clock::now();
    for (int i = 0; i < inner; ++i) f();
    t.push_back(std::chrono::duration<double>(Clock::now() - t0).count() / inner);
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

struct Gemm {
  bool ta, tb;
  int m, n, k;
};

// Raw cblas_sgemm on preallocated buffers, threaded by OpenBLAS itself (threads as set by
// set_num_threads): the ceiling the framework is measured against.
std::function<void()> raw_gemms(const std::vector<Gemm>& gemms) {
  auto bufs = std::make_shared<std::vector<std::vector<float>>>();
  for (const Gemm& g : gemms) {
    bufs->emplace_back(size_t(g.m) * g.k, 0.01f);
    bufs->emplace_back(size_t(g.k) * g.n, 0.02f);
    bufs->emplace_back(size_t(g.m) * g.n, 0.f);
  }
  return [gemms, bufs] {
    for (size_t i = 0; i < gemms.size(); ++i) {
      const Gemm& g = gemms[i];
      auto& a = (*bufs)[3 * i];
      auto& b = (*bufs)[3 * i + 1];
      auto& c = (*bufs)[3 * i + 2];
      cblas_sgemm(CblasRowMajor, g.ta ? CblasTrans : CblasNoTrans, g.tb ? CblasTrans : CblasNoTrans, g.m, g.n, g.k,
                  1.f, a.data(), g.ta ? g.m : g.k, b.data(), g.tb ? g.k : g.n, 0.f, c.data(), g.n);
    }
  };
}

// Median seconds per call of the framework step and of the raw GEMMs, timed in
// alternating batches so that drift in the machine's speed hits both alike.
std::pair<double, double> paired_times(const std::function<void()>& framework, const std::vector<Gemm>& gemms,
                                       int reps, int inner) {
  const std::function<void()> raw = raw_gemms(gemms);
  std::vector<double> tf, tr;
  for (int r = 0; r < reps; ++r) {
    tf.push_back(median_time(framework, 1, inner));
    tr.push_back(median_time(raw, 1, inner));
  }
  std::sort(tf.begin(), tf.end());
  std::sort(tr.begin(), tr.end());
  return {tf[tf.size() / 2], tr[tr.size() / 2]};
}

double flops(const std::vector<Gemm>& gemms) {
  double f = 0;
  for (const Gemm& g : gemms) f += 2.0 * g.m * g.n * g.k;
  return f;
}

void report(const char* name, double t_fw, double t_raw, double fl) {
  std::printf("%-34s %10.1f us %8.1f GFLOP/s | raw sgemm %10.1f us %8.1f GFLOP/s | overhead %+6.1f %%\n", name,
              t_fw * 1e6, fl / t_fw * 1e-9, t_raw * 1e6, fl / t_raw * 1e-9, (t_fw / t_raw - 1) * 100);
}

}  // namespace

int main(int argc, char** argv) {
  int threads = 2, reps = 15;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--threads") && i + 1 < argc) threads = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--reps") && i + 1 < argc) reps = std::atoi(argv[++i]);
    else {
      std::fprintf(stderr, "usage: bench_ops [--threads N] [--reps R]\n");
      return 2;
    }
  }
  set_num_threads(threads);
  std::printf("# %s\n# threads=%d, median of %d repeats\n", blas_info().c_str(), threads, reps);
  Rng rng(1);
  const int B = 128;

  // ---- MLP matmuls: x(B,784) -> 256 -> 128 -> 10, y = x W^T, forward + backward.
  {
    const int dims[] = {784, 256, 128, 10};
    std::vector<Variable> w;
    for (int l = 0; l < 3; ++l)
      w.emplace_back(Tensor::randn({dims[l + 1], dims[l]}, rng, 0.f, 0.05f), true);
    Variable x(Tensor::randn({B, 784}, rng), false);
    Tensor seed = Tensor::randn({B, 10}, rng);
    auto step = [&] {
      for (auto& p : w) p.zero_grad();
      Variable h = x;
      for (int l = 0; l < 3; ++l) h = matmul(h, w[size_t(l)], false, true);
      h.backward(seed);
    };
    // The same GEMMs: forward C = A B^T per layer; backward dW = dY^T X per layer and
    // dX = dY W for layers 2 and 3 (the input needs no gradient).
    std::vector<Gemm> g;
    for (int l = 0; l < 3; ++l) g.push_back({false, true, B, dims[l + 1], dims[l]});
    for (int l = 2; l >= 0; --l) {
      g.push_back({true, false, dims[l + 1], dims[l], B});
      if (l > 0) g.push_back({false, false, B, dims[l], dims[l + 1]});
    }
    const auto [t_fw, t_raw] = paired_times(step, g, reps, 50);
    report("mlp matmuls fwd+bwd (B=128)", t_fw, t_raw, flops(g));
  }

  // ---- LeNet-sized convolutions, forward + backward.
  struct ConvCase {
    const char* name;
    int C, H, O, K, pad;
  };
  for (const ConvCase& c : {ConvCase{"lenet conv1 1->6 5x5 pad2 28x28", 1, 28, 6, 5, 2},
                            ConvCase{"lenet conv2 6->16 5x5 14x14", 6, 14, 16, 5, 0}}) {
    Variable x(Tensor::randn({B, c.C, c.H, c.H}, rng), c.C > 1);
    Variable w(Tensor::randn({c.O, c.C, c.K, c.K}, rng, 0.f, 0.1f), true);
    Variable b(Tensor::zeros({c.O}), true);
    Conv2dParams p{1, 1, c.pad, c.pad};
    const int OH = c.H + 2 * c.pad - c.K + 1;
    Tensor seed = Tensor::randn({B, c.O, OH, OH}, rng);
    auto step = [&] {
      w.zero_grad();
      b.zero_grad();
      x.zero_grad();
      conv2d(x, w, b, p).backward(seed);
    };
    const int ckk = c.C * c.K * c.K, n = B * OH * OH;
    std::vector<Gemm> g{{false, false, c.O, n, ckk}, {false, true, c.O, ckk, n}};
    if (c.C > 1) g.push_back({true, false, ckk, n, c.O});
    const auto [t_fw, t_raw] = paired_times(step, g, reps, 10);
    report(c.name, t_fw, t_raw, flops(g));
  }
  return 0;
}
