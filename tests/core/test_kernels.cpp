// The fast kernels (OpenBLAS sgemm, im2col + sgemm convolution) against the plain-loop
// oracles in core/reference.h, on many seeded random shapes.
//
// Tolerance: |fast - reference| <= 1e-5 * sum_k |a_k b_k|, elementwise, where the sum runs
// over the same terms as the dot product (computed as the reference kernel applied to
// |a| and |b|). A K-term float32 dot product is off by at most ~K * 2^-24 of that sum in
// the worst case and ~sqrt(K) * 2^-24 typically (the reference accumulates in double), so
// 1e-5 holds for every K used here, while a wrong index, a missing term or a misplaced
// padding cell is off by O(1) of it.
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/blas.h"
#include "core/check.h"
#include "core/lane_sum.h"
#include "core/ops.h"
#include "core/parallel.h"
#include "core/reference.h"
#include "core/rng.h"
#include "core/sgemm.h"
#include "tests/support/threads.h"
#include "tests/support/tensors.h"

using namespace crayon;
using namespace crayon::testing;

namespace {

constexpr double kTol = 1e-5;

float absf(float v) { return std::fabs(v); }

void check_matmul(int64_t M, int64_t K, int64_t N, bool ta, bool tb, uint64_t seed) {
  const Tensor a = normal(ta ? Shape{K, M} : Shape{M, K}, seed);
  const Tensor b = normal(tb ? Shape{N, K} : Shape{K, N}, seed + 1);
  const Tensor fast = matmul(Variable(a), Variable(b), ta, tb).value();
  const Tensor want = reference::matmul(a, b, ta, tb);
  const Tensor scale = reference::matmul(map(a, absf), map(b, absf), ta, tb);
  check_close(fast, want, kTol, scale,
              str("matmul M=", M, " K=", K, " N=", N, " trans_a=", ta, " trans_b=", tb));
}

// Restores the float path and the convolution algorithm a test changed.
struct KernelChoice {
  KernelChoice(FloatIsa isa, ConvAlgo algo) {
    set_float_isa(isa);
    set_conv_algo(algo);
  }
  ~KernelChoice() {
    set_float_isa(saved_isa);
    set_conv_algo(saved_algo);
  }
  KernelChoice(const KernelChoice&) = delete;
  KernelChoice& operator=(const KernelChoice&) = delete;
  FloatIsa saved_isa = float_isa();
  ConvAlgo saved_algo = conv_algo();
};

// Random geometry with the kernel fitting into the padded input.
struct ConvCase {
  Shape x, w;
  Conv2dParams p;
};

ConvCase random_conv_case(Rng& rng) {
  ConvCase c;
  const int64_t B = 1 + int64_t(rng.below(3)), C = 1 + int64_t(rng.below(4)), O = 1 + int64_t(rng.below(5));
  const int64_t H = 1 + int64_t(rng.below(9)), W = 1 + int64_t(rng.below(9));
  c.p.stride_h = 1 + int(rng.below(3));
  c.p.stride_w = 1 + int(rng.below(3));
  c.p.pad_h = int(rng.below(3));
  c.p.pad_w = int(rng.below(3));
  const int64_t KH = 1 + int64_t(rng.below(uint64_t(std::min<int64_t>(5, H + 2 * c.p.pad_h))));
  const int64_t KW = 1 + int64_t(rng.below(uint64_t(std::min<int64_t>(5, W + 2 * c.p.pad_w))));
  c.x = {B, C, H, W};
  c.w = {O, C, KH, KW};
  return c;
}

std::string describe(const ConvCase& c) {
  return str("conv2d x ", shape_str(c.x), " w ", shape_str(c.w), " stride (", c.p.stride_h, ", ", c.p.stride_w,
             ") pad (", c.p.pad_h, ", ", c.p.pad_w, ")");
}

void check_conv(const ConvCase& c, bool with_bias, uint64_t seed) {
  const Tensor x = normal(c.x, seed), w = normal(c.w, seed + 1);
  const Tensor b = with_bias ? normal({c.w[0]}, seed + 2) : Tensor();
  const Tensor fast = conv2d(Variable(x), Variable(w), with_bias ? Variable(b) : Variable(), c.p).value();
  const Tensor want = reference::conv2d(x, w, b, c.p);
  const Tensor scale = reference::conv2d(map(x, absf), map(w, absf), with_bias ? map(b, absf) : Tensor(), c.p);
  check_close(fast, want, kTol, scale, describe(c) + (with_bias ? " with bias" : ""));
}

// Restores the thread count a test changed.
}  // namespace

TEST_CASE("blas: the binary links OpenBLAS, not the reference BLAS") {
  const std::string info = blas_info();
  INFO(info);
  CHECK(info.find("OpenBLAS") != std::string::npos);
}

TEST_CASE("matmul: matches the reference kernel for all transpose combinations on random shapes") {
  Rng rng(1);
  for (int trial = 0; trial < 40; ++trial) {
    const int64_t M = 1 + int64_t(rng.below(40)), K = 1 + int64_t(rng.below(40)), N = 1 + int64_t(rng.below(40));
    for (bool ta : {false, true})
      for (bool tb : {false, true}) check_matmul(M, K, N, ta, tb, uint64_t(trial * 4 + ta * 2 + tb));
  }
}

TEST_CASE("matmul: matches the reference kernel on degenerate and larger shapes") {
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      check_matmul(1, 1, 1, ta, tb, 10);
      check_matmul(1, 7, 1, ta, tb, 11);
      check_matmul(1, 300, 17, ta, tb, 12);  // one row, long inner dimension
      check_matmul(129, 65, 67, ta, tb, 13);  // beyond OpenBLAS's small-matrix paths
    }
}

TEST_CASE("conv2d: matches the reference kernel on random shapes, strides and paddings") {
  Rng rng(2);
  for (int trial = 0; trial < 150; ++trial) {
    const ConvCase c = random_conv_case(rng);
    check_conv(c, trial % 3 != 0, uint64_t(100 + trial));
  }
}

TEST_CASE("conv2d: matches the reference kernel on typical layer shapes") {
  check_conv({{2, 3, 32, 32}, {8, 3, 5, 5}, {}}, true, 300);           // LeNet-style 5x5, CIFAR input
  check_conv({{3, 6, 14, 14}, {16, 6, 5, 5}, {}}, true, 301);
  check_conv({{2, 8, 15, 15}, {8, 8, 3, 3}, {2, 2, 1, 1}}, true, 302);  // strided, padded, odd
  check_conv({{1, 4, 9, 11}, {5, 4, 1, 1}, {}}, false, 303);            // 1x1 kernel
  check_conv({{2, 2, 5, 5}, {3, 2, 5, 5}, {}}, true, 304);              // kernel = input: 1x1 output
}

TEST_CASE("conv2d: matches the reference kernel when the batch is split into several GEMM chunks") {
  KernelChoice gemm(float_isa(), ConvAlgo::gemm);  // automatic would take the direct kernels here
  // Columns per image: C*KH*KW * OH*OW = 27 * 1024 = 27648 floats; chunk_images() cuts the
  // batch into chunks of at most 2^20 / 27648 = 37 images and at least four chunks per
  // thread, so a batch of 80 runs as several GEMMs whatever the thread count.
  check_conv({{80, 3, 32, 32}, {4, 3, 3, 3}, {1, 1, 1, 1}}, true, 400);
}

TEST_CASE("conv2d: backward over several GEMM chunks matches the reference's directional derivatives") {
  // L = sum(r * conv(x, w, b)) is linear in each of x, w and b, so for any direction d,
  // (L(w + d) - L(w - d)) / 2 = <dL/dw, d> exactly in real arithmetic; with the reference
  // kernel (double accumulation) on both sides it is exact to float rounding of y.
  KernelChoice gemm(float_isa(), ConvAlgo::gemm);  // automatic would take the direct kernels here
  const Conv2dParams p{1, 1, 1, 1};
  const Tensor x = normal({80, 3, 32, 32}, 500), w = normal({4, 3, 3, 3}, 501), b = normal({4}, 502);
  const Tensor r = normal({80, 4, 32, 32}, 503);
  Variable vx(x, true), vw(w, true), vb(b, true);
  Variable y = conv2d(vx, vw, vb, p);
  y.backward(r);

  auto loss = [&](const Tensor& xx, const Tensor& ww, const Tensor& bb) {
    const Tensor yy = reference::conv2d(xx, ww, bb, p);
    double s = 0;
    for (int64_t i = 0; i < yy.numel(); ++i) s += double(r.data()[i]) * yy.data()[i];
    return s;
  };
  auto shifted = [](const Tensor& t, const Tensor& d, float sign) {
    Tensor out = t.clone();
    for (int64_t i = 0; i < out.numel(); ++i) out.data()[i] += sign * d.data()[i];
    return out;
  };
  auto dot = [](const Tensor& g, const Tensor& d) {
    double s = 0, scale = 0;
    for (int64_t i = 0; i < g.numel(); ++i) {
      s += double(g.data()[i]) * d.data()[i];
      scale += std::fabs(double(g.data()[i]) * d.data()[i]);
    }
    return std::pair{s, scale};
  };
  const Tensor dx = normal(x.shape(), 504), dw = normal(w.shape(), 505), db = normal(b.shape(), 506);

  const auto [gx, sx] = dot(vx.grad(), dx);
  const double nx = (loss(shifted(x, dx, 1), w, b) - loss(shifted(x, dx, -1), w, b)) / 2;
  CHECK(std::fabs(gx - nx) <= 1e-4 * sx);
  const auto [gw, sw] = dot(vw.grad(), dw);
  const double nw = (loss(x, shifted(w, dw, 1), b) - loss(x, shifted(w, dw, -1), b)) / 2;
  CHECK(std::fabs(gw - nw) <= 1e-4 * sw);
  const auto [gb, sb] = dot(vb.grad(), db);
  const double nb = (loss(x, w, shifted(b, db, 1)) - loss(x, w, shifted(b, db, -1))) / 2;
  CHECK(std::fabs(gb - nb) <= 1e-4 * sb);
}

TEST_CASE("threads: 1 and 2 threads give conv2d and matmul results equal within float round-off") {
  // OpenBLAS may split a GEMM differently per thread count, so bit-identity across thread
  // counts is not promised (DESIGN.md promises it for a fixed count); the results must agree
  // to the kernel tolerance, and a fixed count must reproduce itself bit for bit.
  ThreadCount guard;
  const Tensor x = normal({40, 3, 32, 32}, 600), w = normal({8, 3, 3, 3}, 601), b = normal({8}, 602);
  const Tensor a = normal({257, 130}, 603), m = normal({130, 191}, 604);
  const Conv2dParams p{1, 1, 1, 1};
  auto run = [&](int threads) {
    set_num_threads(threads);
    REQUIRE(num_threads() == threads);
    Variable vx(x, true), vw(w, true);
    Variable y = conv2d(vx, vw, Variable(b), p);
    y.backward(Tensor::ones(y.shape()));
    return std::vector<Tensor>{y.value(), vx.grad(), vw.grad(), matmul(Variable(a), Variable(m)).value()};
  };
  const std::vector<Tensor> one = run(1), two = run(2), two_again = run(2);
  const Tensor conv_scale = reference::conv2d(map(x, absf), map(w, absf), map(b, absf), p);
  check_close(two[0], one[0], kTol, conv_scale, "conv2d forward, 2 vs 1 threads");
  check_close(two[1], one[1], 1e-4, {}, "conv2d dx, 2 vs 1 threads");
  check_close(two[2], one[2], 1e-4, {}, "conv2d dw, 2 vs 1 threads");
  check_close(two[3], one[3], kTol, reference::matmul(map(a, absf), map(m, absf)), "matmul, 2 vs 1 threads");
  for (size_t i = 0; i < two.size(); ++i) {
    CAPTURE(i);
    CHECK(bitwise_equal(two[i], two_again[i]));
  }
}

TEST_CASE("max_pool2d: the 2x2 stride-2 fast path matches a plain loop, ties to the first maximum") {
  // Values from {0, 1, 2} so most windows hold ties; odd sizes leave a last row / column out;
  // rows of 14 and 5 windows (LeNet's) fill part of one AVX-512 step, 33 and 37 several.
  // avx512 runs the AVX-512 rows, the other float paths the portable ones.
  for (FloatIsa isa : {FloatIsa::blas, FloatIsa::avx512}) {
    if (!float_isa_supported(isa)) continue;
    KernelChoice choice(isa, conv_algo());
    CAPTURE(float_isa_name(isa));
    Rng rng(77);
    for (const auto& [H, W] : {std::pair<int64_t, int64_t>{7, 9}, {8, 8}, {2, 3}, {28, 28}, {10, 10}, {5, 75}, {3, 66}}) {
      const int64_t B = 2, C = 3, OH = H / 2, OW = W / 2;
      Tensor x = Tensor::empty({B, C, H, W});
      for (float& v : x.values()) v = float(rng.below(3));
      const Tensor dy = normal({B, C, OH, OW}, 78);
      Variable vx(x, true);
      Variable y = max_pool2d(vx, Pool2dParams{2, 2, 2, 2, 0, 0});
      y.backward(dy);
      Tensor want_y = Tensor::zeros({B, C, OH, OW}), want_dx = Tensor::zeros({B, C, H, W});
      for (int64_t bc = 0; bc < B * C; ++bc)
        for (int64_t oh = 0; oh < OH; ++oh)
          for (int64_t ow = 0; ow < OW; ++ow) {
            int64_t at = (bc * H + 2 * oh) * W + 2 * ow;
            for (int64_t dh = 0; dh < 2; ++dh)
              for (int64_t dw = 0; dw < 2; ++dw) {
                const int64_t i = (bc * H + 2 * oh + dh) * W + 2 * ow + dw;
                if (x.data()[i] > x.data()[at]) at = i;
              }
            const int64_t o = (bc * OH + oh) * OW + ow;
            want_y.data()[o] = x.data()[at];
            want_dx.data()[at] += dy.data()[o];
          }
      CAPTURE(H);
      CAPTURE(W);
      CHECK(bitwise_equal(y.value(), want_y));
      CHECK(bitwise_equal(vx.grad(), want_dx));
    }
  }
}

TEST_CASE("threads: pooling forward and backward are bit-identical for 1 and 2 threads") {
  // Each (image, channel) plane is one task, so the split cannot change any sum.
  ThreadCount guard;
  const Tensor x = normal({3, 5, 9, 8}, 610), dy = normal({3, 5, 5, 4}, 611);
  const Pool2dParams p{3, 3, 2, 2, 1, 1};
  auto run = [&](int threads) {
    set_num_threads(threads);
    Variable vm(x, true), va(x, true);
    Variable ym = max_pool2d(vm, p), ya = avg_pool2d(va, p);
    ym.backward(dy);
    ya.backward(dy);
    return std::vector<Tensor>{ym.value(), vm.grad(), ya.value(), va.grad()};
  };
  const std::vector<Tensor> one = run(1), two = run(2);
  for (size_t i = 0; i < one.size(); ++i) {
    CAPTURE(i);
    CHECK(bitwise_equal(one[i], two[i]));
  }
}

TEST_CASE("parallel_for: every index from 0 to n-1 is visited exactly once, for 1 to 3 threads") {
  ThreadCount guard;
  for (int threads : {1, 2, 3}) {
    set_num_threads(threads);
    CHECK(num_threads() == threads);
    for (int64_t n : {0, 1, 2, 3, 7, 1000}) {
      CAPTURE(threads);
      CAPTURE(n);
      std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
      std::atomic<int> calls{0};
      parallel_for(n, [&](int64_t begin, int64_t end) {
        ++calls;
        for (int64_t i = begin; i < end; ++i) ++hits[size_t(i)];
      });
      bool once = true;
      for (auto& h : hits) once = once && h == 1;
      CHECK(once);
      CHECK(calls <= threads);
      // Below min_per_thread * 2 the loop runs inline, in one call.
      calls = 0;
      parallel_for(n, [&](int64_t, int64_t) { ++calls; }, 100000);
      CHECK(calls == (n > 0 ? 1 : 0));
    }
  }
  CHECK_THROWS_AS(set_num_threads(0), std::invalid_argument);
}

TEST_CASE("parallel_for: nested loops run inline and an exception reaches the caller") {
  ThreadCount guard;
  set_num_threads(2);
  std::atomic<int64_t> total{0};
  parallel_for(4, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i)
      parallel_for(10, [&](int64_t b2, int64_t e2) { total += e2 - b2; });
  });
  CHECK(total == 40);
  CHECK_THROWS_AS(parallel_for(8, [](int64_t b, int64_t) {
    if (b > 0) throw std::runtime_error("worker failed");
  }), std::runtime_error);
  CHECK_THROWS_AS(parallel_for(8, [](int64_t b, int64_t) {
    if (b == 0) throw std::runtime_error("caller's part failed");
  }), std::runtime_error);
  // The pool still works afterwards.
  std::atomic<int64_t> after{0};
  parallel_for(6, [&](int64_t b, int64_t e) { after += e - b; });
  CHECK(after == 6);
}

TEST_CASE("conv2d: the weight gradient is the same whether forward columns are kept or rebuilt") {
  // Columns above 64 MiB are rebuilt in the backward pass instead of kept: 130 images of
  // 16*9 x 32*32 columns take 77 MB, while each half (65 images) takes 38 MB and is kept.
  // dW is a sum over images, so the two halves' gradients add up to the whole batch's.
  KernelChoice gemm(float_isa(), ConvAlgo::gemm);  // the direct kernels keep no columns
  const Conv2dParams p{1, 1, 1, 1};
  const Tensor x = normal({130, 16, 32, 32}, 600), w = normal({4, 16, 3, 3}, 601);
  const Tensor r = normal({130, 4, 32, 32}, 602);
  Variable vw(w, true);
  conv2d(Variable(x), vw, Variable(), p).backward(r);
  Variable hw(w, true);
  conv2d(Variable(x.slice(0, 65)), hw, Variable(), p).backward(r.slice(0, 65));
  conv2d(Variable(x.slice(65, 130)), hw, Variable(), p).backward(r.slice(65, 130));
  check_close(vw.grad(), hw.grad(), 1e-4);
}

TEST_CASE("conv2d: a retained graph gives the same gradients on a second backward pass") {
  const Tensor x = normal({6, 3, 8, 8}, 610), w = normal({5, 3, 3, 3}, 611), r = normal({6, 5, 8, 8}, 612);
  Variable vx(x, true), vw(w, true);
  Variable y = conv2d(vx, vw, Variable(), {1, 1, 1, 1});
  y.backward(r, true);
  const Tensor gx = vx.grad().clone(), gw = vw.grad().clone();
  vx.zero_grad();
  vw.zero_grad();
  y.backward(r, true);
  CHECK(bitwise_equal(vx.grad(), gx));
  CHECK(bitwise_equal(vw.grad(), gw));
}

namespace {

// Shapes for both algorithms: mostly stride 1 (the direct kernels' case) with padding up to
// kernel - 1, sometimes stride 2 or more padding (im2col + GEMM); channel counts past one
// register block (24 outputs on AVX-512), widths past one column block (64 on AVX-512) and
// odd sizes; batch 1 to 3. The reference's work is kept under ~3M multiply-adds.
ConvCase random_algo_case(Rng& rng) {
  for (;;) {
    ConvCase c;
    const int64_t B = 1 + int64_t(rng.below(3));
    const int64_t C = rng.below(4) == 0 ? 1 : 1 + int64_t(rng.below(9));
    const int64_t O = 1 + int64_t(rng.below(rng.below(3) == 0 ? 30 : 9));
    const int K = 1 + int(rng.below(7));
    const int64_t H = 1 + int64_t(rng.below(20));
    const int64_t W = rng.below(4) == 0 ? 60 + int64_t(rng.below(20)) : 1 + int64_t(rng.below(30));
    const bool strided = rng.below(5) == 0;
    c.p.stride_h = c.p.stride_w = strided ? 2 : 1;
    c.p.pad_h = int(rng.below(uint64_t(K + (rng.below(6) == 0 ? 2 : 0))));
    c.p.pad_w = int(rng.below(uint64_t(K + (rng.below(6) == 0 ? 2 : 0))));
    if (H + 2 * c.p.pad_h < K || W + 2 * c.p.pad_w < K) continue;
    c.x = {B, C, H, W};
    c.w = {O, C, K, K};
    const int64_t OH = (H + 2 * c.p.pad_h - K) / c.p.stride_h + 1, OW = (W + 2 * c.p.pad_w - K) / c.p.stride_w + 1;
    if (B * O * OH * OW * C * K * K <= 3'000'000) return c;
  }
}

// Forward, input, weight and bias gradients of conv2d against the reference's, each within
// kTol of the sum of its terms' magnitudes.
void check_conv_all(const ConvCase& c, uint64_t seed, const std::string& what) {
  const Tensor x = normal(c.x, seed), w = normal(c.w, seed + 1), b = normal({c.w[0]}, seed + 2);
  Variable vx(x, true), vw(w, true), vb(b, true);
  Variable y = conv2d(vx, vw, vb, c.p);
  const Tensor dy = normal(y.shape(), seed + 3);
  y.backward(dy);
  const std::string where = what + " " + describe(c);
  check_close(y.value(), reference::conv2d(x, w, b, c.p), kTol,
              reference::conv2d(map(x, absf), map(w, absf), map(b, absf), c.p), where + " forward");
  const reference::Conv2dGrads want = reference::conv2d_backward(x, w, dy, c.p);
  const reference::Conv2dGrads scale = reference::conv2d_backward(map(x, absf), map(w, absf), map(dy, absf), c.p);
  check_close(vx.grad(), want.dx, kTol, scale.dx, where + " input gradient");
  check_close(vw.grad(), want.dw, kTol, scale.dw, where + " weight gradient");
  const int64_t O = c.w[0], plane = y.size(2) * y.size(3);
  Tensor db = Tensor::empty({O}), db_scale = Tensor::empty({O});
  for (int64_t o = 0; o < O; ++o) {
    double s = 0, a = 0;
    for (int64_t i = 0; i < y.size(0); ++i)
      for (int64_t j = 0; j < plane; ++j) {
        const double v = dy.data()[(i * O + o) * plane + j];
        s += v;
        a += std::fabs(v);
      }
    db.data()[o] = float(s);
    db_scale.data()[o] = float(a);
  }
  check_close(vb.grad(), db, kTol, db_scale, where + " bias gradient");
}

}  // namespace

TEST_CASE("conv2d: both algorithms on every float path match the reference forward and both gradients") {
  std::string ran;
  for (FloatIsa isa : {FloatIsa::blas, FloatIsa::avx2, FloatIsa::avx512}) {
    if (!float_isa_supported(isa)) continue;
    for (ConvAlgo algo : {ConvAlgo::gemm, ConvAlgo::direct, ConvAlgo::winograd}) {
      KernelChoice choice(isa, algo);
      const std::string what = str(float_isa_name(isa), " ", conv_algo_name(algo));
      ran += (ran.empty() ? "" : ", ") + what;
      Rng rng(7100 + uint64_t(isa) * 10 + uint64_t(algo));
      for (int trial = 0; trial < 60; ++trial) check_conv_all(random_algo_case(rng), uint64_t(9000 + trial), what);
      // The layers crayon's presets have, at batch 2, and a first layer with C = 1 and 3.
      check_conv_all({{2, 1, 28, 28}, {6, 1, 5, 5}, {1, 1, 2, 2}}, 9100, what);
      check_conv_all({{2, 6, 14, 14}, {16, 6, 5, 5}, {}}, 9101, what);
      check_conv_all({{2, 3, 32, 32}, {32, 3, 3, 3}, {1, 1, 1, 1}}, 9102, what);
      check_conv_all({{1, 32, 16, 16}, {64, 32, 3, 3}, {1, 1, 1, 1}}, 9103, what);
      check_conv_all({{2, 16, 8, 8}, {40, 16, 3, 3}, {1, 1, 1, 1}}, 9104, what);
    }
  }
  MESSAGE("conv2d paths tested: " << ran);
}

TEST_CASE("conv2d: Winograd F(2x2 3x3) matches the reference on every tile layout it takes") {
  if (!float_isa_supported(FloatIsa::avx512)) {
    MESSAGE("skipped: this CPU has no AVX-512");
    return;
  }
  KernelChoice choice(FloatIsa::avx512, ConvAlgo::winograd);
  const Conv2dParams same{1, 1, 1, 1};
  // Tile rows of 4, 8, 16 and 32 tiles (a vector of 16 tiles spans 4, 2, 1 or half a row),
  // channel counts off the register block of 8, one channel, batch 1, and chunks of tiles
  // that end on a single vector (48 and 80 tiles per image).
  const ConvCase cases[] = {{{2, 16, 8, 8}, {40, 16, 3, 3}, same},   {{3, 5, 8, 16}, {7, 5, 3, 3}, same},
                            {{1, 9, 24, 8}, {11, 9, 3, 3}, same},    {{2, 3, 16, 32}, {6, 3, 3, 3}, same},
                            {{1, 1, 8, 64}, {1, 1, 3, 3}, same},     {{1, 70, 20, 16}, {9, 70, 3, 3}, same},
                            {{5, 17, 8, 8}, {130, 17, 3, 3}, same}};
  for (const ConvCase& c : cases) {
    REQUIRE(conv2d_algo_for(c.x, c.w, c.p) == ConvAlgo::winograd);
    check_conv_all(c, 9300 + uint64_t(c.x[1]), "avx512 winograd");
  }
  // Threads split the batch by groups of images fixed by the shape: the same bits on 1 and 2.
  const Tensor x = normal({7, 20, 8, 8}, 9400), w = normal({24, 20, 3, 3}, 9401), r = normal({7, 24, 8, 8}, 9402);
  std::vector<Tensor> got[2];
  for (int threads : {1, 2}) {
    ThreadCount tc(threads);
    Variable vx(x, true), vw(w, true);
    Variable y = conv2d(vx, vw, Variable(), same);
    y.backward(r);
    got[threads - 1] = {y.value(), vx.grad(), vw.grad()};
  }
  CHECK(bitwise_equal(got[0][0], got[1][0]));
  CHECK(bitwise_equal(got[0][1], got[1][1]));
  // The weight gradient sums each thread's images apart: equal within round-off.
  const Tensor dw_scale = reference::conv2d_backward(map(x, absf), map(w, absf), map(r, absf), same).dw;
  check_close(got[1][2], got[0][2], kTol, dw_scale, "winograd weight gradient, 2 vs 1 threads");
  // Shapes it does not take fall back to the direct kernels.
  CHECK(conv2d_algo_for({2, 4, 8, 12}, {4, 4, 3, 3}, same) == ConvAlgo::direct);   // W % 8 != 0
  CHECK(conv2d_algo_for({2, 4, 6, 8}, {4, 4, 3, 3}, same) == ConvAlgo::direct);    // 12 tiles an image
  CHECK(conv2d_algo_for({2, 4, 8, 8}, {4, 4, 3, 3}, {}) == ConvAlgo::direct);      // no padding
  CHECK(conv2d_algo_for({2, 4, 8, 8}, {4, 4, 5, 5}, {1, 1, 2, 2}) == ConvAlgo::direct);  // 5x5
}

TEST_CASE("conv2d: the direct kernels run on a batch split over threads as on one thread") {
  // The forward pass and the input gradient split the batch, each image computed alone, so
  // the bits match; the weight gradient sums each thread's images apart and adds the parts,
  // so it agrees within float round-off.
  for (FloatIsa isa : {FloatIsa::avx2, FloatIsa::avx512}) {
    if (!float_isa_supported(isa)) continue;
    KernelChoice choice(isa, ConvAlgo::direct);
    const Tensor x = normal({9, 3, 12, 13}, 9200), w = normal({5, 3, 3, 3}, 9201), r = normal({9, 5, 12, 13}, 9202);
    std::vector<Tensor> got[2];
    for (int threads : {1, 2}) {
      ThreadCount tc(threads);
      Variable vx(x, true), vw(w, true);
      Variable y = conv2d(vx, vw, Variable(), {1, 1, 1, 1});
      y.backward(r);
      got[threads - 1] = {y.value(), vx.grad(), vw.grad()};
    }
    CHECK_MESSAGE(bitwise_equal(got[0][0], got[1][0]), float_isa_name(isa));
    CHECK_MESSAGE(bitwise_equal(got[0][1], got[1][1]), float_isa_name(isa));
    const Tensor scale = reference::conv2d_backward(map(x, absf), map(w, absf), map(r, absf), {1, 1, 1, 1}).dw;
    check_close(got[1][2], got[0][2], kTol, scale, str(float_isa_name(isa), " weight gradient, 2 vs 1 threads"));
  }
}

TEST_CASE("conv2d: the automatic choice takes Winograd or the direct kernels where they pay and im2col + GEMM elsewhere") {
  const Conv2dParams same{1, 1, 1, 1};
  for (FloatIsa isa : {FloatIsa::blas, FloatIsa::avx2, FloatIsa::avx512}) {
    if (!float_isa_supported(isa)) continue;
    KernelChoice choice(isa, ConvAlgo::automatic);
    CAPTURE(float_isa_name(isa));
    const ConvAlgo fast = isa == FloatIsa::blas ? ConvAlgo::gemm : ConvAlgo::direct;
    CHECK(conv2d_algo_for({128, 1, 28, 28}, {6, 1, 5, 5}, {1, 1, 2, 2}) == fast);    // lenet5 conv1
    CHECK(conv2d_algo_for({128, 6, 14, 14}, {16, 6, 5, 5}, {}) == fast);             // conv2: short GEMM
    const ConvAlgo wino = isa == FloatIsa::avx512 ? ConvAlgo::winograd : fast;
    CHECK(conv2d_algo_for({128, 32, 32, 32}, {32, 32, 3, 3}, same) == wino);         // cifar conv2
    CHECK(conv2d_algo_for({128, 32, 32, 32}, {32, 32, 5, 5}, {1, 1, 2, 2}) == fast); // rows fill the lanes
    CHECK(conv2d_algo_for({128, 3, 32, 32}, {32, 3, 3, 3}, same) == fast);           // C < 16: no Winograd
    CHECK(conv2d_algo_for({8, 3, 32, 32}, {8, 3, 3, 3}, {2, 2, 1, 1}) == ConvAlgo::gemm);  // stride 2
    CHECK(conv2d_algo_for({8, 3, 32, 32}, {8, 3, 3, 3}, {1, 1, 3, 3}) == ConvAlgo::gemm);  // padding > K - 1
    CHECK(conv2d_algo_for({8, 3, 32, 32}, {8, 3, 9, 9}, {}) == ConvAlgo::gemm);            // KW > 7
    CHECK(conv2d_algo_for({128, 64, 8, 8}, {128, 64, 3, 3}, same) == wino);            // cifar conv5
    // 8-wide rows of a long GEMM: half of the AVX-512 lanes, all of AVX2's.
    CHECK(conv2d_algo_for({128, 64, 8, 8}, {128, 64, 3, 3}, {1, 1, 0, 0}) ==
          (isa == FloatIsa::avx2 ? ConvAlgo::direct : ConvAlgo::gemm));
    set_conv_algo(ConvAlgo::gemm);
    CHECK(conv2d_algo_for({128, 1, 28, 28}, {6, 1, 5, 5}, {1, 1, 2, 2}) == ConvAlgo::gemm);
    set_conv_algo(ConvAlgo::direct);
    CHECK(conv2d_algo_for({128, 64, 8, 8}, {128, 64, 3, 3}, same) == fast);
  }
}

TEST_CASE("threads: batch_norm forward and backward are bit-identical for 1 and 2 threads") {
  // Threads split the channels for the statistics and the planes for the elementwise passes;
  // each channel's sums run in the same order either way.
  ThreadCount guard;
  const Tensor x = normal({6, 5, 7, 9}, 620), dy = normal({6, 5, 7, 9}, 621);
  const Tensor g = normal({5}, 622), b = normal({5}, 623);
  auto run = [&](int threads) {
    set_num_threads(threads);
    Tensor mean = Tensor::zeros({5}), var = Tensor::ones({5});
    Variable vx(x, true), vg(g, true), vb(b, true);
    Variable y = batch_norm(vx, vg, vb, mean, var, true);
    y.backward(dy);
    return std::vector<Tensor>{y.value(), vx.grad(), vg.grad(), vb.grad(), mean, var};
  };
  const std::vector<Tensor> one = run(1), two = run(2);
  for (size_t i = 0; i < one.size(); ++i) {
    CAPTURE(i);
    CHECK(bitwise_equal(one[i], two[i]));
  }
}

TEST_CASE("sum_squares: the eight double lanes against one double chain for lengths around the lane count and a long run") {
  // Every term is exact in double (a float squared), so the two sums differ only in the
  // order of their double additions: relative 1e-13 is loose for these lengths. A dropped
  // lane, a skipped tail or a float accumulator is off by far more. The last value is made
  // large, so that losing the last lane or the tail changes the sum by most of it.
  Rng rng(7);
  for (size_t n : std::vector<size_t>{0, 1, 7, 8, 9, 15, 16, 17, 23, 31, 33, 47, 50, 100003}) {
    std::vector<float> v(n);
    for (float& x : v) x = rng.uniform() * 2.f - 1.f;
    if (n > 0) v.back() = 1e3f;
    double want = 0;
    for (float x : v) want += double(x) * double(x);
    CAPTURE(n);
    CHECK(sum_squares(v) == doctest::Approx(want).epsilon(1e-13));
  }
}
