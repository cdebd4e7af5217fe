// crayon's float GEMM (core/sgemm.h) on every path this CPU runs (blas = OpenBLAS, avx2,
// avx512), against a plain double-precision triple loop: random shapes across the kernel's
// tile edges and the blocking's block edges, all transposes, alpha and beta (beta = 0 over a
// C full of NaN, which must not leak), padded row strides whose padding must stay untouched,
// and the same bits whatever the thread count.
//
// Tolerance: |fast - exact| <= 2 k 2^-24 (|alpha| sum_p |a_ip b_pj| + |beta c_ij|) + 1e-30,
// the worst case of a float32 sum of k + 1 terms in any order (Higham 2002, sec. 3.1); a
// wrong index or a lost term is off by O(1) of the sum.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "core/check.h"
#include "core/parallel.h"
#include "core/rng.h"
#include "core/sgemm.h"
#include "tests/support/threads.h"

using namespace crayon;

namespace {

struct Case {
  bool ta, tb;
  int m, n, k;
  float alpha, beta;
  int pad;  // extra floats at the end of every row of A, B and C
};

std::string describe(const Case& c, FloatIsa isa) {
  return str(float_isa_name(isa), ": ", c.ta ? "A^T" : "A", " ", c.tb ? "B^T" : "B", " m ", c.m, " n ", c.n, " k ", c.k,
             " alpha ", c.alpha, " beta ", c.beta, " pad ", c.pad);
}

struct Operands {
  int lda, ldb, ldc;
  std::vector<float> a, b, c0;
};

Operands make(const Case& c, uint64_t seed) {
  Rng rng(seed);
  Operands o;
  const int a_rows = c.ta ? c.k : c.m, a_cols = c.ta ? c.m : c.k;
  const int b_rows = c.tb ? c.n : c.k, b_cols = c.tb ? c.k : c.n;
  o.lda = a_cols + c.pad, o.ldb = b_cols + c.pad, o.ldc = c.n + c.pad;
  o.a.resize(size_t(a_rows) * o.lda);
  o.b.resize(size_t(b_rows) * o.ldb);
  o.c0.resize(size_t(c.m) * o.ldc);
  for (float& v : o.a) v = rng.normal();
  for (float& v : o.b) v = rng.normal();
  for (float& v : o.c0) v = c.beta == 0.f ? std::numeric_limits<float>::quiet_NaN() : rng.normal();
  return o;
}

void check(const Case& c, FloatIsa isa, uint64_t seed) {
  const Operands o = make(c, seed);
  std::vector<float> out = o.c0;
  sgemm(c.ta, c.tb, c.m, c.n, c.k, c.alpha, o.a.data(), o.lda, o.b.data(), o.ldb, c.beta, out.data(), o.ldc, isa);
  const double u = std::ldexp(1.0, -24);
  int bad = 0;
  for (int i = 0; i < c.m && bad < 3; ++i) {
    for (int j = 0; j < c.n + c.pad && bad < 3; ++j) {
      const size_t at = size_t(i) * o.ldc + j;
      if (j >= c.n) {  // the row's padding: untouched, NaN or not
        const bool same = std::isnan(o.c0[at]) ? std::isnan(out[at]) : out[at] == o.c0[at];
        if (!same) ++bad;
        CHECK_MESSAGE(same, describe(c, isa), ": padding of row ", i, " written");
        continue;
      }
      double exact = 0, scale = 0;
      for (int p = 0; p < c.k; ++p) {
        const double av = c.ta ? o.a[size_t(p) * o.lda + i] : o.a[size_t(i) * o.lda + p];
        const double bv = c.tb ? o.b[size_t(j) * o.ldb + p] : o.b[size_t(p) * o.ldb + j];
        exact += av * bv;
        scale += std::fabs(av * bv);
      }
      exact *= c.alpha;
      scale *= std::fabs(c.alpha);
      if (c.beta != 0.f) exact += double(c.beta) * o.c0[at], scale += std::fabs(double(c.beta) * o.c0[at]);
      const double tol = 2.0 * (c.k + 1) * u * scale + 1e-30;
      const bool ok = std::fabs(double(out[at]) - exact) <= tol;
      if (!ok) ++bad;
      CHECK_MESSAGE(ok, describe(c, isa), ": C(", i, ", ", j, ") = ", out[at], ", exact ", exact, ", tolerance ", tol);
    }
  }
}

std::vector<FloatIsa> paths() {
  std::vector<FloatIsa> out;
  for (FloatIsa isa : {FloatIsa::blas, FloatIsa::avx2, FloatIsa::avx512})
    if (float_isa_supported(isa)) out.push_back(isa);
  return out;
}

}  // namespace

TEST_CASE("sgemm: every path this CPU runs matches the exact product on random shapes, transposes, alpha, beta") {
  std::string ran;
  for (FloatIsa isa : paths()) ran += str(ran.empty() ? "" : ", ", float_isa_name(isa));
  MESSAGE(str("float GEMM paths run here: ", ran, " (in use: ", float_isa_name(float_isa()), ")"));
  Rng rng(7);
  const float alphas[] = {1.f, -0.5f, 2.f}, betas[] = {0.f, 1.f, 0.25f};
  for (int trial = 0; trial < 60; ++trial) {
    Case c{rng.below(2) == 1, rng.below(2) == 1, 1 + int(rng.below(40)), 1 + int(rng.below(70)),
           1 + int(rng.below(40)), alphas[rng.below(3)], betas[rng.below(3)], int(rng.below(3))};
    for (FloatIsa isa : paths()) check(c, isa, uint64_t(trial));
  }
}

TEST_CASE("sgemm: the block edges (k past 256, m past 144, n past 1024), thin shapes and k = 0") {
  const Case cases[] = {
      {false, false, 6, 4000, 25, 1.f, 0.f, 0},     // conv1 forward of a chunk: O x (images x 784)
      {false, true, 16, 150, 3000, 1.f, 1.f, 1},     // a conv weight gradient: k runs over images
      {true, false, 150, 1100, 16, 1.f, 0.f, 0},     // a conv input gradient: W^T dY
      {false, true, 150, 300, 520, -1.f, 0.25f, 2},  // two k-blocks and a partial third, m past 144
      {true, true, 13, 33, 257, 0.5f, 0.f, 3},       // one step past a k-block, tile edges
      {false, false, 1, 1, 1, 1.f, 0.f, 0},
      {false, false, 300, 1, 40, 1.f, 1.f, 0},       // one column
      {false, false, 5, 7, 0, 1.f, 0.f, 1},          // k = 0: C = beta C, zeros for beta = 0
      {false, false, 5, 7, 0, 1.f, 0.5f, 1},
  };
  for (const Case& c : cases)
    for (FloatIsa isa : paths()) check(c, isa, uint64_t(c.m * 31 + c.n));
}

TEST_CASE("sgemm: the same bits on 1 and 2 threads, and the ISA choice refuses what the CPU lacks") {
  const ThreadCount restore;
  const Case c{false, true, 100, 700, 300, 1.f, 0.f, 0};
  for (FloatIsa isa : paths()) {
    if (isa == FloatIsa::blas) continue;  // OpenBLAS promises nothing across thread counts
    const Operands o = make(c, 5);
    std::vector<float> one = o.c0, two = o.c0;
    set_num_threads(1);
    sgemm(c.ta, c.tb, c.m, c.n, c.k, c.alpha, o.a.data(), o.lda, o.b.data(), o.ldb, c.beta, one.data(), o.ldc, isa);
    set_num_threads(2);
    sgemm(c.ta, c.tb, c.m, c.n, c.k, c.alpha, o.a.data(), o.lda, o.b.data(), o.ldb, c.beta, two.data(), o.ldc, isa);
    CHECK_MESSAGE(one == two, float_isa_name(isa));
  }
  CHECK(parse_float_isa("avx2") == FloatIsa::avx2);
  CHECK_THROWS_WITH_AS(parse_float_isa("sse"), "unknown float kernel path 'sse' (expected blas, avx2 or avx512)",
                       std::invalid_argument);
  for (FloatIsa isa : {FloatIsa::avx2, FloatIsa::avx512})
    if (!float_isa_supported(isa)) CHECK_THROWS_AS(set_float_isa(isa), std::invalid_argument);
}
