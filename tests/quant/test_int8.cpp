// The int8 engine's integer kernels (quant/int8_gemm.h, quant/requant.h, quant/int8_ops.h):
// every GEMM path equals the triple loop exactly, the fixed-point output stage is within one
// LSB of float64 math (gemmlowp's standard), conv equals its direct seven-loop oracle.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <vector>

#include "core/parallel.h"
#include "core/rng.h"
#include "quant/int8_gemm.h"
#include "quant/int8_ops.h"
#include "quant/requant.h"

using namespace crayon;

namespace {

constexpr int32_t kI32Min = std::numeric_limits<int32_t>::min(), kI32Max = std::numeric_limits<int32_t>::max();

int64_t pick(Rng& rng, int64_t lo, int64_t hi) { return lo + int64_t(rng.below(uint64_t(hi - lo + 1))); }

// Random int8 in [lo, hi], with about a quarter of the entries at the two extremes, where a
// saturating kernel (vpmaddubsw) or a wrong sign trick would show.
std::vector<int8_t> random_i8(Rng& rng, int64_t n, int lo, int hi) {
  std::vector<int8_t> v(static_cast<size_t>(n));
  for (auto& x : v) {
    const uint64_t r = rng.below(8);
    x = int8_t(r == 0 ? lo : r == 1 ? hi : pick(rng, lo, hi));
  }
  return v;
}

Tensor tensor_i8(const Shape& shape, const std::vector<int8_t>& v) {
  Tensor t = Tensor::empty(shape, DType::i8);
  std::copy(v.begin(), v.end(), t.data_as<int8_t>());
  return t;
}

double round_half_away(double v) { return std::round(v); }

std::vector<Int8Isa> supported_isas() {
  std::vector<Int8Isa> out;
  for (Int8Isa isa : {Int8Isa::portable, Int8Isa::avx2, Int8Isa::avx512vnni})
    if (int8_isa_supported(isa)) out.push_back(isa);
  return out;
}

// Restores the thread count and the kernel path when a test ends, even by exception.
struct Restore {
  int threads = num_threads();
  Int8Isa isa = int8_isa();
  ~Restore() {
    set_num_threads(threads);
    set_int8_isa(isa);
  }
};

void check_gemm_case(Rng& rng, int64_t m, int64_t k, int64_t n) {
  const auto a = random_i8(rng, m * k, -128, 127);
  const auto w = random_i8(rng, n * k, -127, 127);
  std::vector<int32_t> want(size_t(m * n)), got(size_t(m * n));
  gemm_s8_reference(a.data(), m, k, w.data(), n, want.data());
  const PackedWeights packed = pack_weights(w.data(), n, k);
  for (Int8Isa isa : supported_isas()) {
    std::fill(got.begin(), got.end(), -1);
    gemm_s8(a.data(), m, k, packed, got.data(), isa);
    INFO("path ", int8_isa_name(isa), ", m ", m, ", k ", k, ", n ", n);
    CHECK(got == want);
  }
}

}  // namespace

TEST_CASE("gemm_s8: every kernel path equals the triple-loop reference on random odd shapes") {
  Rng rng(1);
  for (int trial = 0; trial < 300; ++trial) check_gemm_case(rng, pick(rng, 1, 70), pick(rng, 1, 70), pick(rng, 1, 70));
  // Reduction lengths around the 4-byte groups and the vector widths, and longer rows.
  for (int64_t k : {1, 2, 3, 4, 5, 15, 16, 17, 31, 33, 63, 64, 65, 127, 129, 800, 1001})
    check_gemm_case(rng, pick(rng, 1, 9), k, pick(rng, 1, 70));
  check_gemm_case(rng, 130, 77, 97);  // several row tiles and channel blocks
}

TEST_CASE("gemm_s8: the extreme products sum exactly where an int16 pair would saturate") {
  // a = -128 or 127 against w = -127 or 127 everywhere: pairs of 2 * 128 * 127 = 32512 and,
  // with a + 128 = 255, 2 * 255 * 127 = 64770 > 2^15.
  const int64_t m = 5, k = 259, n = 40;
  for (int av : {-128, 127})
    for (int wv : {-127, 127}) {
      const std::vector<int8_t> a(size_t(m * k), int8_t(av)), w(size_t(n * k), int8_t(wv));
      const PackedWeights packed = pack_weights(w.data(), n, k);
      for (Int8Isa isa : supported_isas()) {
        std::vector<int32_t> c(size_t(m * n));
        gemm_s8(a.data(), m, k, packed, c.data(), isa);
        INFO("a ", av, ", w ", wv, ", path ", int8_isa_name(isa));
        for (int32_t v : c) CHECK(v == av * wv * k);
      }
    }
  // The longest allowed row: |sum| = 128 * 127 * kMaxGemmK, just inside int32.
  const std::vector<int8_t> a(size_t(kMaxGemmK), int8_t(-128)), w(size_t(kMaxGemmK), int8_t(-127));
  const PackedWeights packed = pack_weights(w.data(), 1, kMaxGemmK);
  for (Int8Isa isa : supported_isas()) {
    int32_t c = 0;
    gemm_s8(a.data(), 1, kMaxGemmK, packed, &c, isa);
    CHECK(int64_t(c) == int64_t(128) * 127 * kMaxGemmK);
  }
}

TEST_CASE("gemm_s8: one and two threads give identical results") {
  Restore restore;
  Rng rng(2);
  const int64_t m = 203, k = 99, n = 70;
  const auto a = random_i8(rng, m * k, -128, 127), w = random_i8(rng, n * k, -127, 127);
  const PackedWeights packed = pack_weights(w.data(), n, k);
  for (Int8Isa isa : supported_isas()) {
    std::vector<int32_t> one(size_t(m * n)), two(size_t(m * n));
    set_num_threads(1);
    gemm_s8(a.data(), m, k, packed, one.data(), isa);
    set_num_threads(2);
    gemm_s8(a.data(), m, k, packed, two.data(), isa);
    CHECK(one == two);
  }
}

TEST_CASE("gemm_s8: the path is chosen by name, and unknown names, -128 weights and bad shapes are refused") {
  Restore restore;
  for (Int8Isa isa : supported_isas()) {
    CHECK(parse_int8_isa(int8_isa_name(isa)) == isa);
    set_int8_isa(isa);
    CHECK(int8_isa() == isa);
  }
  CHECK(int8_isa_supported(best_int8_isa()));
  CHECK_THROWS_AS(parse_int8_isa("sse9"), std::invalid_argument);
  const std::vector<int8_t> w = {1, -128, 3};
  CHECK_THROWS_AS(pack_weights(w.data(), 1, 3), std::invalid_argument);
  CHECK_THROWS_AS(pack_weights(w.data(), 1, 0), std::invalid_argument);
  CHECK_THROWS_AS(pack_weights(w.data(), 1, kMaxGemmK + 1), std::invalid_argument);
  const PackedWeights packed = pack_weights(w.data(), 1, 1);
  int32_t c = 0;
  CHECK_THROWS_AS(gemm_s8(w.data(), 1, 2, packed, &c), std::invalid_argument);
}

TEST_CASE("quantize_multiplier: multiplier times 2^(shift - 31) recovers the real within 1e-9 relative") {
  Rng rng(3);
  for (int i = 0; i < 2000; ++i) {
    const double real = std::ldexp(1.0 + rng.uniform(), int(pick(rng, -30, 20)));
    const FixedPointMultiplier m = quantize_multiplier(real);
    INFO("real ", real);
    CHECK(m.multiplier >= (1 << 30));
    CHECK(std::fabs(multiplier_value(m) - real) <= 1e-9 * real);
  }
  // TFLite's known values, and the edge where q rounds up to 2^31: it becomes 2^30, shift + 1.
  CHECK(quantize_multiplier(0.5).multiplier == (1 << 30));
  CHECK(quantize_multiplier(0.5).shift == 0);
  CHECK(quantize_multiplier(1.0).multiplier == (1 << 30));
  CHECK(quantize_multiplier(1.0).shift == 1);
  CHECK(quantize_multiplier(0.75).multiplier == 1610612736);
  const FixedPointMultiplier edge = quantize_multiplier(std::nextafter(1.0, 0.0));
  CHECK(edge.multiplier == (1 << 30));
  CHECK(edge.shift == 1);
  // Below 2^-32 every product rounds to 0: flushed to a zero multiplier, as TFLite does.
  const FixedPointMultiplier tiny = quantize_multiplier(1e-12);
  CHECK(tiny.multiplier == 0);
  CHECK(multiply_by_quantized_multiplier(kI32Max, tiny) == 0);
  for (double bad : {0.0, -0.5, double(NAN), double(INFINITY), 4e9}) CHECK_THROWS_AS(quantize_multiplier(bad), std::invalid_argument);
}

TEST_CASE("saturating_rounding_doubling_high_mul and rounding_divide_by_pot reproduce gemmlowp's roundings") {
  // round(a * b / 2^31), ties toward +infinity (ARM vqrdmulh); INT32_MIN^2 saturates.
  CHECK(saturating_rounding_doubling_high_mul(kI32Min, kI32Min) == kI32Max);
  CHECK(saturating_rounding_doubling_high_mul(1 << 30, 1 << 30) == (1 << 29));
  CHECK(saturating_rounding_doubling_high_mul(kI32Min, kI32Max) == -kI32Max);
  CHECK(saturating_rounding_doubling_high_mul(kI32Max, kI32Max) == kI32Max - 1);
  CHECK(saturating_rounding_doubling_high_mul(1 << 15, 1 << 15) == 1);        // 0.5 -> 1
  CHECK(saturating_rounding_doubling_high_mul(-(1 << 15), 1 << 15) == 0);     // -0.5 -> 0
  CHECK(saturating_rounding_doubling_high_mul(3 << 15, 1 << 15) == 2);        // 1.5 -> 2
  CHECK(saturating_rounding_doubling_high_mul(-(3 << 15), 1 << 15) == -1);    // -1.5 -> -1
  CHECK(saturating_rounding_doubling_high_mul(-(3 << 15) - 1, 1 << 15) == -2);  // just below -1.5
  // round(x / 2^e), ties away from zero.
  const std::vector<std::tuple<int32_t, int, int32_t>> cases = {
      {5, 1, 3},  {-5, 1, -3}, {3, 1, 2},  {-3, 1, -2}, {7, 2, 2},          {-7, 2, -2},         {6, 2, 2},
      {-6, 2, -2}, {2, 2, 1},  {-2, 2, -1}, {1, 2, 0},  {-1, 2, 0},         {9, 0, 9},           {-9, 0, -9},
      {kI32Max, 31, 1},        {kI32Min, 31, -1},       {kI32Max, 1, 1 << 30}, {kI32Min, 1, -(1 << 30)}};
  for (const auto& [x, e, want] : cases) {
    const int32_t xv = x, ev = e;  // plain locals: INFO captures by reference
    INFO("x ", xv, ", exponent ", ev);
    CHECK(rounding_divide_by_pot(x, e) == want);
  }
}

TEST_CASE("multiply_by_quantized_multiplier: within 1 of round-half-away(x * real) in float64") {
  Rng rng(4);
  for (int i = 0; i < 20000; ++i) {
    const double real = std::ldexp(1.0 + rng.uniform(), int(pick(rng, -24, 3)));
    const FixedPointMultiplier m = quantize_multiplier(real);
    // |x * real| below 2^30 keeps the product in range; small x also against the true real.
    const int64_t bound = std::min<int64_t>(kI32Max, int64_t(std::ldexp(1.0, 30) / real));
    const int32_t x = int32_t(pick(rng, -bound, bound)), small = int32_t(pick(rng, -(1 << 20), 1 << 20));
    INFO("x ", x, ", small ", small, ", real ", real);
    CHECK(std::fabs(multiply_by_quantized_multiplier(x, m) - round_half_away(double(x) * multiplier_value(m))) <= 1);
    CHECK(std::fabs(multiply_by_quantized_multiplier(small, m) - round_half_away(double(small) * real)) <= 1);
  }
  // Exactly representable multipliers: 0.25 = 2^30 * 2^(-1 - 31). -2 * 0.25 = -0.5 -> -1 (away).
  const FixedPointMultiplier quarter = quantize_multiplier(0.25);
  CHECK(multiply_by_quantized_multiplier(-2, quarter) == -1);
  CHECK(multiply_by_quantized_multiplier(2, quarter) == 1);
  CHECK(multiply_by_quantized_multiplier(100, quarter) == 25);
  CHECK(multiply_by_quantized_multiplier(-100, quarter) == -25);
  CHECK(multiply_by_quantized_multiplier(100, quantize_multiplier(4.0)) == 400);
}

TEST_CASE("requantize: matches float64 math within one LSB, clamps to the activation range, and transposes") {
  Rng rng(5);
  const int64_t rows = 37, n = 23;
  std::vector<int32_t> acc(size_t(rows * n)), bias(static_cast<size_t>(n));
  std::vector<double> real(static_cast<size_t>(n));
  std::vector<FixedPointMultiplier> mult(static_cast<size_t>(n));
  for (auto& v : acc) v = int32_t(pick(rng, -200000, 200000));
  for (int64_t j = 0; j < n; ++j) {
    bias[size_t(j)] = int32_t(pick(rng, -5000, 5000));
    real[size_t(j)] = std::ldexp(1.0 + rng.uniform(), -int(pick(rng, 8, 14)));
    mult[size_t(j)] = quantize_multiplier(real[size_t(j)]);
  }
  for (const auto& [zp, lo, hi] : std::vector<std::tuple<int32_t, int32_t, int32_t>>{{0, -128, 127}, {-128, -128, 127},
                                                                                       {17, 17, 127}, {-5, -5, 40}}) {
    std::vector<int8_t> out(size_t(rows * n)), out_t(size_t(rows * n));
    requantize(acc.data(), rows, n, bias.data(), mult.data(), zp, lo, hi, out.data(), false);
    requantize(acc.data(), rows, n, bias.data(), mult.data(), zp, lo, hi, out_t.data(), true);
    for (int64_t i = 0; i < rows; ++i)
      for (int64_t j = 0; j < n; ++j) {
        const double want = std::clamp(zp + round_half_away(real[size_t(j)] * (acc[size_t(i * n + j)] + bias[size_t(j)])),
                                       double(lo), double(hi));
        const int got = out[size_t(i * n + j)];
        CHECK(std::fabs(got - want) <= 1);
        CHECK((got >= lo && got <= hi));
        CHECK(out_t[size_t(j * rows + i)] == got);
      }
  }
  int8_t y = 0;
  CHECK_THROWS_AS(requantize(acc.data(), 1, 1, nullptr, mult.data(), 0, 10, 5, &y, false), std::invalid_argument);
}

TEST_CASE("fold_input_zero_point: the folded bias gives the accumulators of (q - z_in) and refuses int32 overflow") {
  Rng rng(6);
  const int64_t m = 9, k = 31, n = 13;
  const int32_t z_in = -37;
  const auto a = random_i8(rng, m * k, -128, 127), w = random_i8(rng, n * k, -127, 127);
  std::vector<int32_t> bias(static_cast<size_t>(n));
  for (auto& b : bias) b = int32_t(pick(rng, -1000, 1000));
  const PackedWeights packed = pack_weights(w.data(), n, k);
  const std::vector<int32_t> folded = fold_input_zero_point(bias, packed, z_in);
  std::vector<int32_t> c(size_t(m * n));
  gemm_s8(a.data(), m, k, packed, c.data());
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      int64_t want = bias[size_t(j)];
      for (int64_t kk = 0; kk < k; ++kk) want += (a[size_t(i * k + kk)] - z_in) * w[size_t(j * k + kk)];
      CHECK(c[size_t(i * n + j)] + folded[size_t(j)] == want);
    }
  const std::vector<int8_t> big(size_t(kMaxGemmK), int8_t(127));
  const std::vector<int32_t> top = {kI32Max};
  CHECK_THROWS_AS(fold_input_zero_point(top, pack_weights(big.data(), 1, kMaxGemmK), -128), std::overflow_error);
  CHECK_THROWS_AS(fold_input_zero_point(std::vector<int32_t>(3), packed, 0), std::invalid_argument);
}

TEST_CASE("linear_s8: equals its reference exactly and the float64 layer within one LSB") {
  Restore restore;
  Rng rng(7);
  for (int trial = 0; trial < 40; ++trial) {
    const int64_t B = pick(rng, 1, 9), K = pick(rng, 1, 70), N = pick(rng, 1, 70);
    const int32_t z_in = int32_t(pick(rng, -128, 127)), z_out = int32_t(pick(rng, -128, 127));
    const double s_in = 0.02 + rng.uniform() * 0.1, s_out = 0.5 + rng.uniform();
    std::vector<float> s_w(static_cast<size_t>(N));
    std::vector<int32_t> bias(static_cast<size_t>(N));
    for (auto& s : s_w) s = 0.001f + rng.uniform() * 0.01f;
    for (auto& b : bias) b = int32_t(pick(rng, -20000, 20000));
    const auto xv = random_i8(rng, B * K, -128, 127), wv = random_i8(rng, N * K, -127, 127);
    const Tensor x = tensor_i8({B, K}, xv), w = tensor_i8({N, K}, wv);
    const int32_t act_min = trial % 2 ? z_out : -128;  // ReLU on odd trials
    const OutputStage stage = make_output_stage(s_in, s_w, s_out, z_out, act_min, 127);
    const PackedWeights packed = pack_weights(w);
    set_num_threads(1 + trial % 2);
    const Tensor y = linear_s8(x, z_in, packed, bias, stage), want = linear_s8_reference(x, z_in, w, bias, stage);
    const Tensor acc = linear_s8_acc(x, z_in, packed, bias), acc_ref = linear_s8_acc_reference(x, z_in, w, bias);
    REQUIRE(y.shape() == Shape{B, N});
    for (int64_t b = 0; b < B; ++b)
      for (int64_t j = 0; j < N; ++j) {
        int64_t sum = bias[size_t(j)];
        for (int64_t k = 0; k < K; ++k) sum += (xv[size_t(b * K + k)] - z_in) * wv[size_t(j * K + k)];
        const int got = y.data_as<int8_t>()[b * N + j];
        const double real = s_in * double(s_w[size_t(j)]) / s_out;
        CHECK(got == want.data_as<int8_t>()[b * N + j]);
        CHECK(acc.data_as<int32_t>()[b * N + j] == sum);
        CHECK(acc_ref.data_as<int32_t>()[b * N + j] == sum);
        CHECK(std::fabs(got - std::clamp(z_out + std::round(real * double(sum)), double(act_min), 127.0)) <= 1);
      }
  }
}

TEST_CASE("conv2d_s8: equals its direct seven-loop reference for random shapes, strides, paddings and zero points") {
  Restore restore;
  Rng rng(8);
  auto run = [&](int64_t B, int64_t C, int64_t H, int64_t W, int64_t O, int KH, int KW, const Conv2dParams& p) {
    const int32_t z_in = int32_t(pick(rng, -128, 127)), z_out = int32_t(pick(rng, -128, 127));
    const double s_in = 0.05, s_out = 0.4 + rng.uniform();
    std::vector<float> s_w(static_cast<size_t>(O));
    std::vector<int32_t> bias(static_cast<size_t>(O));
    for (auto& s : s_w) s = 0.002f + rng.uniform() * 0.01f;
    for (auto& b : bias) b = int32_t(pick(rng, -3000, 3000));
    const Tensor x = tensor_i8({B, C, H, W}, random_i8(rng, B * C * H * W, -128, 127));
    const Tensor w = tensor_i8({O, C, KH, KW}, random_i8(rng, O * C * KH * KW, -127, 127));
    const OutputStage stage = make_output_stage(s_in, s_w, s_out, z_out, rng.below(2) ? z_out : -128, 127);
    const Tensor want = conv2d_s8_reference(x, z_in, w, bias, p, stage);
    const PackedWeights packed = pack_weights(w);
    for (int threads : {1, 2}) {
      set_num_threads(threads);
      const Tensor y = conv2d_s8(x, z_in, packed, bias, p, stage);
      INFO("x ", shape_str(x.shape()), ", w ", shape_str(w.shape()), ", stride ", p.stride_h, "x", p.stride_w,
           ", pad ", p.pad_h, "x", p.pad_w, ", threads ", threads);
      REQUIRE(y.shape() == want.shape());
      CHECK(std::equal(y.data_as<int8_t>(), y.data_as<int8_t>() + y.numel(), want.data_as<int8_t>()));
    }
  };
  for (int trial = 0; trial < 60; ++trial) {
    Conv2dParams p;
    p.stride_h = int(pick(rng, 1, 2));
    p.stride_w = int(pick(rng, 1, 2));
    p.pad_h = int(pick(rng, 0, 2));
    p.pad_w = int(pick(rng, 0, 2));
    const int KH = int(pick(rng, 1, 3)), KW = int(pick(rng, 1, 3));
    const int64_t H = pick(rng, std::max<int64_t>(1, KH - 2 * p.pad_h), 9);
    const int64_t W = pick(rng, std::max<int64_t>(1, KW - 2 * p.pad_w), 9);
    run(pick(rng, 1, 3), pick(rng, 1, 5), H, W, pick(rng, 1, 40), KH, KW, p);
  }
  // Wide enough that one image is cut into several pixel chunks (bounded scratch).
  run(1, 64, 24, 24, 35, 3, 3, Conv2dParams{1, 1, 1, 1});
  run(3, 48, 13, 11, 20, 3, 3, Conv2dParams{2, 1, 0, 2});
}

TEST_CASE("conv2d_s8: the integer output is within one LSB of the float64 convolution") {
  Rng rng(9);
  const int64_t B = 2, C = 3, H = 7, W = 6, O = 5;
  const int KH = 3, KW = 3;
  const Conv2dParams p{1, 2, 1, 1};
  const int32_t z_in = 11, z_out = -20;
  const double s_in = 0.03, s_out = 0.25;
  const std::vector<float> s_w = {0.01f, 0.02f, 0.005f, 0.013f, 0.008f};
  const std::vector<int32_t> bias = {100, -2000, 0, 777, -5};
  const auto xv = random_i8(rng, B * C * H * W, -128, 127), wv = random_i8(rng, O * C * KH * KW, -127, 127);
  const OutputStage stage = make_output_stage(s_in, s_w, s_out, z_out);
  const Tensor y = conv2d_s8(tensor_i8({B, C, H, W}, xv), z_in, pack_weights(tensor_i8({O, C, KH, KW}, wv)), bias, p,
                             stage);
  const int64_t OH = 7, OW = 3;
  REQUIRE(y.shape() == Shape{B, O, OH, OW});
  for (int64_t b = 0; b < B; ++b)
    for (int64_t o = 0; o < O; ++o)
      for (int64_t oh = 0; oh < OH; ++oh)
        for (int64_t ow = 0; ow < OW; ++ow) {
          double real = s_in * s_w[size_t(o)] * bias[size_t(o)];  // real-valued conv of dequantized tensors
          for (int64_t c = 0; c < C; ++c)
            for (int kh = 0; kh < KH; ++kh)
              for (int kw = 0; kw < KW; ++kw) {
                const int64_t ih = oh * p.stride_h - p.pad_h + kh, iw = ow * p.stride_w - p.pad_w + kw;
                if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
                real += s_in * (xv[size_t(((b * C + c) * H + ih) * W + iw)] - z_in) * s_w[size_t(o)] *
                        wv[size_t(((o * C + c) * KH + kh) * KW + kw)];
              }
          const double want = std::clamp(z_out + std::round(real / s_out), -128.0, 127.0);
          CHECK(std::fabs(y.data_as<int8_t>()[((b * O + o) * OH + oh) * OW + ow] - want) <= 1);
        }
}

TEST_CASE("maxpool2d_s8: each output is the largest input of its window, padding never winning") {
  Rng rng(10);
  for (int trial = 0; trial < 30; ++trial) {
    Pool2dParams p;
    p.kernel_h = int(pick(rng, 1, 3));
    p.kernel_w = int(pick(rng, 1, 3));
    p.stride_h = int(pick(rng, 1, 3));
    p.stride_w = int(pick(rng, 1, 3));
    p.pad_h = int(pick(rng, 0, p.kernel_h / 2));
    p.pad_w = int(pick(rng, 0, p.kernel_w / 2));
    const int64_t B = pick(rng, 1, 2), C = pick(rng, 1, 3), H = pick(rng, 3, 9), W = pick(rng, 3, 9);
    const auto xv = random_i8(rng, B * C * H * W, -128, 127);
    const Tensor y = maxpool2d_s8(tensor_i8({B, C, H, W}, xv), p);
    const int64_t OH = y.size(2), OW = y.size(3);
    for (int64_t bc = 0; bc < B * C; ++bc)
      for (int64_t oh = 0; oh < OH; ++oh)
        for (int64_t ow = 0; ow < OW; ++ow) {
          int best = -1000;
          for (int kh = 0; kh < p.kernel_h; ++kh)
            for (int kw = 0; kw < p.kernel_w; ++kw) {
              const int64_t ih = oh * p.stride_h - p.pad_h + kh, iw = ow * p.stride_w - p.pad_w + kw;
              if (ih >= 0 && ih < H && iw >= 0 && iw < W) best = std::max<int>(best, xv[size_t((bc * H + ih) * W + iw)]);
            }
          CHECK(y.data_as<int8_t>()[(bc * OH + oh) * OW + ow] == best);
        }
  }
}

TEST_CASE("avgpool2d_s8: a constant input keeps its value and outputs are within one LSB of the float64 average") {
  Rng rng(11);
  const Pool2dParams p{3, 3, 2, 2, 1, 1};
  const int64_t B = 2, C = 3, H = 9, W = 8, area = 9;
  // Same grid in and out: a constant plane stays exactly that constant (padding aside).
  const int32_t z = -7;
  const Pool2dParams two;  // 2x2, stride 2
  const FixedPointMultiplier same = quantize_multiplier(1.0 / (two.kernel_h * two.kernel_w));
  for (int q : {-128, -7, 0, 55, 127}) {
    const Tensor y = avgpool2d_s8(tensor_i8({1, 1, 5, 5}, std::vector<int8_t>(25, int8_t(q))), z, two, same, z);
    for (int64_t i = 0; i < y.numel(); ++i) CHECK(y.data_as<int8_t>()[i] == q);
  }
  // A new grid: q_y = z_out + round(s_in / (s_out * area) * sum(q - z_in)), padding as real 0.
  const int32_t z_in = 20, z_out = -3;
  const double s_in = 0.1, s_out = 0.07;
  const auto xv = random_i8(rng, B * C * H * W, -128, 127);
  const Tensor y = avgpool2d_s8(tensor_i8({B, C, H, W}, xv), z_in, p, quantize_multiplier(s_in / (s_out * area)), z_out);
  const int64_t OH = y.size(2), OW = y.size(3);
  CHECK((OH == 5 && OW == 4));
  for (int64_t bc = 0; bc < B * C; ++bc)
    for (int64_t oh = 0; oh < OH; ++oh)
      for (int64_t ow = 0; ow < OW; ++ow) {
        double sum = 0;
        for (int kh = 0; kh < 3; ++kh)
          for (int kw = 0; kw < 3; ++kw) {
            const int64_t ih = oh * 2 - 1 + kh, iw = ow * 2 - 1 + kw;
            if (ih >= 0 && ih < H && iw >= 0 && iw < W) sum += s_in * (xv[size_t((bc * H + ih) * W + iw)] - z_in);
          }
        const double want = std::clamp(z_out + std::round(sum / area / s_out), -128.0, 127.0);
        CHECK(std::fabs(y.data_as<int8_t>()[(bc * OH + oh) * OW + ow] - want) <= 1);
      }
}
