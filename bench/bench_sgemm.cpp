// The float GEMM paths side by side (core/sgemm.h): OpenBLAS as this process loaded it
// (its core in the header line: OPENBLAS_CORETYPE, or its CPU detection), crayon's AVX2 and
// AVX-512 kernels, on the GEMM shapes crayon's layers produce and on a square 1024 GEMM.
// Median of repeats, GFLOP/s. Usage: bench_sgemm [--threads N] [--reps R]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "core/blas.h"
#include "core/parallel.h"
#include "core/sgemm.h"

using namespace crayon;
using Clock = std::chrono::steady_clock;

namespace {

struct Shape {
  const char* name;
  bool ta, tb;
  int m, n, k;
};

// The shapes of one chunk of images as ops_conv.cpp cuts them (forward W x cols, weight
// gradient dY x cols^T, input gradient W^T x dY), and the mlp's linear layers at batch 128.
const Shape kShapes[] = {
    {"lenet5 conv1 fwd (6 x 25 x 8*784)", false, false, 6, 8 * 784, 25},
    {"lenet5 conv1 dW (6 x 8*784 x 25)", false, true, 6, 25, 8 * 784},
    {"lenet5 conv2 fwd (16 x 150 x 8*100)", false, false, 16, 8 * 100, 150},
    {"lenet5 conv2 dW", false, true, 16, 150, 8 * 100},
    {"lenet5 conv2 dX (150 x 16 x 8*100)", true, false, 150, 8 * 100, 16},
    {"cifar conv 32->32 3x3 fwd (32 x 288 x 4*1024)", false, false, 32, 4 * 1024, 288},
    {"cifar conv 32->32 dW", false, true, 32, 288, 4 * 1024},
    {"cifar conv 32->32 dX", true, false, 288, 4 * 1024, 32},
    {"mlp linear 784->256 fwd (128 x 784 x 256)", false, true, 128, 256, 784},
    {"mlp linear dW (256 x 128 x 784)", true, false, 256, 784, 128},
    {"square 1024", false, false, 1024, 1024, 1024},
};

double median_seconds(int reps, const std::vector<float>& a, const std::vector<float>& b, std::vector<float>& c,
                      const Shape& s, FloatIsa isa) {
  const int lda = s.ta ? s.m : s.k, ldb = s.tb ? s.k : s.n;
  const double flops = 2.0 * s.m * s.n * s.k;
  const int inner = std::max(1, int(2e8 / flops));
  auto once = [&] { sgemm(s.ta, s.tb, s.m, s.n, s.k, 1.f, a.data(), lda, b.data(), ldb, 0.f, c.data(), s.n, isa); };
  for (int i = 0; i < 3; ++i) once();
  std::vector<double> t;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = Clock::now();
    for (int i = 0; i < inner; ++i) once();
    t.push_back(std::chrono::duration<double>(Clock::now() - t0).count() / inner);
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  int threads = 1, reps = 7;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--threads")) threads = std::atoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--reps")) reps = std::atoi(argv[i + 1]);
  }
  set_num_threads(threads);
  std::printf("# %s\n# threads=%d, median of %d repeats, GFLOP/s\n", blas_info().c_str(), threads, reps);
  std::printf("%-48s %10s %10s %10s\n", "shape", "openblas", "avx2", "avx512");
  for (const Shape& s : kShapes) {
    std::vector<float> a(size_t(s.m) * s.k), b(size_t(s.k) * s.n), c(size_t(s.m) * s.n);
    for (size_t i = 0; i < a.size(); ++i) a[i] = float(i % 13) * 0.01f;
    for (size_t i = 0; i < b.size(); ++i) b[i] = float(i % 7) * 0.02f;
    std::printf("%-48s", s.name);
    for (FloatIsa isa : {FloatIsa::blas, FloatIsa::avx2, FloatIsa::avx512}) {
      if (!float_isa_supported(isa)) {
        std::printf(" %10s", "-");
        continue;
      }
      const double sec = median_seconds(reps, a, b, c, s, isa);
      std::printf(" %10.1f", 2.0 * s.m * s.n * s.k / sec / 1e9);
    }
    std::printf("\n");
  }
}
