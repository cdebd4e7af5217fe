// Framework overhead on the GEMM-bound ops: crayon's matmul and conv2d, forward +
// backward through autograd, beside raw cblas_sgemm calls on exactly the same GEMM
// shapes in the same run. Prints time per call (median of repeats), GFLOP/s and the
// overhead ratio. Then every convolution of lenet5 and cifar-cnn alone, forward and
// forward + backward, beside its FLOP count and the fraction of this machine's FMA peak
// (measured here with a register-only FMA loop, AVX2 and AVX-512, on every thread).
// Usage: bench_ops [--threads N] [--reps R]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include <cblas.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "core/blas.h"
#include "core/check.h"
#include "core/ops.h"
#include "core/parallel.h"
#include "core/sgemm.h"

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

#if defined(__x86_64__)
// Peak FMA throughput of one thread: 12 independent accumulator chains (enough to cover the
// FMA latency on two ports), nothing but FMAs in the loop. GFLOP/s = 2 flops per lane.
__attribute__((target("avx512f"))) double fma_peak_avx512(int64_t iters) {
  __m512 a[12];
  for (int i = 0; i < 12; ++i) a[i] = _mm512_set1_ps(1.f + 1e-7f * float(i));
  const __m512 m = _mm512_set1_ps(0.999999f), c = _mm512_set1_ps(1e-7f);
  const auto t0 = Clock::now();
  for (int64_t n = 0; n < iters; ++n)
    for (int i = 0; i < 12; ++i) a[i] = _mm512_fmadd_ps(a[i], m, c);
  const double sec = std::chrono::duration<double>(Clock::now() - t0).count();
  float buf[16], sink = 0;
  for (int i = 0; i < 12; ++i) {
    _mm512_storeu_ps(buf, a[i]);
    for (float v : buf) sink += v;
  }
  if (sink == 12345.f) std::printf(" ");
  return 2.0 * 16 * 12 * double(iters) / sec * 1e-9;
}
__attribute__((target("avx2,fma"))) double fma_peak_avx2(int64_t iters) {
  __m256 a[12];
  for (int i = 0; i < 12; ++i) a[i] = _mm256_set1_ps(1.f + 1e-7f * float(i));
  const __m256 m = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-7f);
  const auto t0 = Clock::now();
  for (int64_t n = 0; n < iters; ++n)
    for (int i = 0; i < 12; ++i) a[i] = _mm256_fmadd_ps(a[i], m, c);
  const double sec = std::chrono::duration<double>(Clock::now() - t0).count();
  float buf[8], sink = 0;
  for (int i = 0; i < 12; ++i) {
    _mm256_storeu_ps(buf, a[i]);
    for (float v : buf) sink += v;
  }
  if (sink == 12345.f) std::printf(" ");
  return 2.0 * 8 * 12 * double(iters) / sec * 1e-9;
}
#endif

// The machine's peak over `threads` threads at once (each runs the loop; the sum of rates),
// median of 5. 0 when the CPU lacks the ISA.
double fma_peak(bool avx512, int threads) {
#if defined(__x86_64__)
  if (avx512 ? !__builtin_cpu_supports("avx512f") : !(__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")))
    return 0;
  std::vector<double> runs;
  for (int r = 0; r < 5; ++r) {
    std::vector<double> per(static_cast<size_t>(threads));
    parallel_parts(threads, [&](int part, int64_t, int64_t) {
      per[size_t(part)] = avx512 ? fma_peak_avx512(20000000) : fma_peak_avx2(20000000);
    });
    double sum = 0;
    for (double v : per) sum += v;
    runs.push_back(sum);
  }
  std::sort(runs.begin(), runs.end());
  return runs[runs.size() / 2];
#else
  (void)avx512, (void)threads;
  return 0;
#endif
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

  // ---- Every convolution of lenet5 and cifar-cnn alone: forward, and forward + backward.
  const double peak512 = fma_peak(true, threads), peak2 = fma_peak(false, threads);
  std::printf("\n# FMA peak on %d threads: AVX-512 %.1f GFLOP/s, AVX2 %.1f GFLOP/s (float GEMM path: %s)\n", threads,
              peak512, peak2, float_isa_name(float_isa()));
  std::printf("# each layer with every algorithm that applies; * marks the one conv2d picks by itself;\n"
              "# GFLOP/s counts the direct convolution's multiply-adds, also for winograd (which does fewer)\n");
  std::printf("%-36s %-9s %6s %10s %9s %7s %7s | %10s %9s %7s\n", "layer (batch)", "algo", "GFLOP", "fwd us", "GFLOP/s",
              "%512", "%AVX2", "fwd+bwd us", "GFLOP/s", "%512");
  struct Layer {
    const char* name;
    int B, C, H, O, K, pad;
  };
  for (const Layer& c : {Layer{"lenet5 conv1 1->6 5x5 pad2 28 (128)", 128, 1, 28, 6, 5, 2},
                         Layer{"lenet5 conv2 6->16 5x5 14 (128)", 128, 6, 14, 16, 5, 0},
                         Layer{"cifar conv1 3->32 3x3 32 (128)", 128, 3, 32, 32, 3, 1},
                         Layer{"cifar conv2 32->32 3x3 32 (128)", 128, 32, 32, 32, 3, 1},
                         Layer{"cifar conv3 32->64 3x3 16 (128)", 128, 32, 16, 64, 3, 1},
                         Layer{"cifar conv4 64->64 3x3 16 (128)", 128, 64, 16, 64, 3, 1},
                         Layer{"cifar conv5 64->128 3x3 8 (128)", 128, 64, 8, 128, 3, 1},
                         Layer{"cifar conv6 128->128 3x3 8 (128)", 128, 128, 8, 128, 3, 1}}) {
    const bool first = c.C <= 3;  // a network's first layer needs no input gradient
    Variable x(Tensor::randn({c.B, c.C, c.H, c.H}, rng), !first);
    Variable w(Tensor::randn({c.O, c.C, c.K, c.K}, rng, 0.f, 0.1f), true);
    const Conv2dParams p{1, 1, c.pad, c.pad};
    const int OH = c.H + 2 * c.pad - c.K + 1;
    const double fwd_flops = 2.0 * c.B * c.O * OH * OH * c.C * c.K * c.K;
    const double all_flops = fwd_flops * (first ? 2 : 3);
    Tensor seed = Tensor::randn({c.B, c.O, OH, OH}, rng);
    auto forward = [&] {
      NoGradGuard ng;
      conv2d(x, w, Variable(), p);
    };
    auto both = [&] {
      w.zero_grad();
      x.zero_grad();
      conv2d(x, w, Variable(), p).backward(seed);
    };
    const int inner = std::max(1, int(4e8 / all_flops));
    const ConvAlgo picked = conv2d_algo_for(x.shape(), w.shape(), p);
    for (ConvAlgo algo : {ConvAlgo::gemm, ConvAlgo::direct, ConvAlgo::winograd}) {
      set_conv_algo(algo);
      if (conv2d_algo_for(x.shape(), w.shape(), p) != algo) continue;  // the algorithm does not apply here
      const double tf = median_time(forward, reps, inner), tb = median_time(both, reps, inner);
      auto pct = [](double rate, double peak) { return peak > 0 ? 100 * rate / peak : 0.0; };
      std::printf("%-36s %-9s %6.2f %10.1f %9.1f %6.1f%% %6.1f%% | %10.1f %9.1f %6.1f%%\n", c.name,
                  str(conv_algo_name(algo), algo == picked ? "*" : "").c_str(), fwd_flops * 1e-9,
                  tf * 1e6, fwd_flops / tf * 1e-9, pct(fwd_flops / tf * 1e-9, peak512), pct(fwd_flops / tf * 1e-9, peak2),
                  tb * 1e6, all_flops / tb * 1e-9, pct(all_flops / tb * 1e-9, peak512));
    }
    set_conv_algo(ConvAlgo::automatic);
  }
  return 0;
}
