// The int8 engine's integer kernels (quant/int8/gemm.h, quant/int8/requant.h, quant/int8/ops.h):
// every GEMM path equals the triple loop exactly, the fixed-point output stage rounds the exact
// product once, half to even (so it equals float64 math but next to a tie), conv equals its
// direct seven-loop oracle. The
// fused kernels (output stage inside the GEMM tiles, conv as channels x pixels, conv + max
// pool, the batch split of Int8Model) equal the plain steps they replace bit for bit, on
// every kernel path, including the output stage's rare corners (left shifts, saturation).
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/parallel.h"
#include "core/rng.h"
#include "quant/int8/gemm.h"
#include "quant/int8/model.h"
#include "quant/int8/ops.h"
#include "quant/int8/requant.h"

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

// The output stage's float64 oracle: q = clamp(z + round_half_even(v)), equal to the engine's
// except where v is within 1e-6 of a tie (its multiplier has 31 bits), and then within 1.
bool matches_real(int got, double z, double v, double lo, double hi) {
  const double want = std::clamp(z + std::nearbyint(v), lo, hi);
  if (std::fabs(std::fabs(v - std::floor(v)) - 0.5) < 1e-6) return std::fabs(got - want) <= 1;
  return got == want;
}

constexpr Int8Isa kAllIsas[] = {Int8Isa::portable, Int8Isa::avx2, Int8Isa::avx512vnni};

std::vector<Int8Isa> supported_isas() {
  std::vector<Int8Isa> out;
  for (Int8Isa isa : kAllIsas)
    if (int8_isa_supported(isa)) out.push_back(isa);
  return out;
}

// Says which kernel paths a test case's loops over supported_isas() run and which they skip
// because this CPU lacks them, so that a run without (say) AVX-512 VNNI is told from one that
// checked it. Called once at the top of each such test case.
void report_isas() {
  const std::vector<Int8Isa> run = supported_isas();
  std::string ran, skipped;
  for (Int8Isa isa : kAllIsas) {
    std::string& list = std::find(run.begin(), run.end(), isa) != run.end() ? ran : skipped;
    list += (list.empty() ? "" : ", ") + std::string(int8_isa_name(isa));
  }
  MESSAGE("int8 GEMM paths run: ", ran,
          "; skipped: ", skipped.empty() ? std::string("none") : skipped + " (this CPU lacks them)");
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

// A random output stage for n channels. Ordinary multipliers (2^-14 .. 2^-4) unless corners:
// then also multipliers >= 1 (a left shift that can saturate), the shifts at their ends
// (-31 and a zero multiplier), INT32_MIN (the SRDHM saturation), and biases within `margin`
// of the int32 ends (acc + bias saturates for small margins).
struct RandomStage {
  OutputStage stage;
  std::vector<int32_t> bias;
};

RandomStage random_stage(Rng& rng, int64_t n, bool corners, int32_t margin = 5000) {
  RandomStage r;
  const int32_t z = int32_t(pick(rng, -128, 127));
  const int32_t lo = int32_t(pick(rng, -128, 127)), hi = int32_t(pick(rng, lo, 127));
  r.stage.zero_point = z;
  r.stage.act_min = rng.below(3) == 0 ? -128 : lo;
  r.stage.act_max = std::max(r.stage.act_min, rng.below(3) == 0 ? 127 : hi);
  for (int64_t j = 0; j < n; ++j) {
    FixedPointMultiplier m = quantize_multiplier(std::ldexp(1.0 + rng.uniform(), -int(pick(rng, 4, 14))));
    int32_t b = int32_t(pick(rng, -30000, 30000));
    if (corners) {
      switch (rng.below(7)) {
        case 0: m = quantize_multiplier(std::ldexp(1.0 + rng.uniform(), int(pick(rng, 0, 12)))); break;
        case 1: m = {int32_t(pick(rng, 1 << 30, kI32Max)), -31}; break;
        case 2: m = {0, 0}; break;
        case 3: m = {kI32Min, int(pick(rng, -3, 2))}; break;
        case 4: b = rng.below(2) ? kI32Max - int32_t(pick(rng, 0, margin)) : kI32Min + int32_t(pick(rng, 0, margin)); break;
        default: break;
      }
    }
    r.stage.multiplier.push_back(m);
    r.bias.push_back(b);
  }
  return r;
}

}  // namespace

TEST_CASE("gemm_s8: every kernel path equals the triple-loop reference on random odd shapes") {
  report_isas();
  Rng rng(1);
  for (int trial = 0; trial < 300; ++trial) check_gemm_case(rng, pick(rng, 1, 70), pick(rng, 1, 70), pick(rng, 1, 70));
  // Reduction lengths around the 4-byte groups and the vector widths, and longer rows.
  for (int64_t k : {1, 2, 3, 4, 5, 15, 16, 17, 31, 33, 63, 64, 65, 127, 129, 800, 1001})
    check_gemm_case(rng, pick(rng, 1, 9), k, pick(rng, 1, 70));
  check_gemm_case(rng, 130, 77, 97);  // several row tiles and channel blocks
}

TEST_CASE("gemm_s8: the extreme products sum exactly where an int16 pair would saturate") {
  report_isas();
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
  report_isas();
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
  report_isas();
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

// The oracle: x * m is exact in long double (64-bit mantissa, |x * m| < 2^62), so is the
// division by a power of two, and nearbyintl rounds half to even.
int64_t exact_round(int32_t x, FixedPointMultiplier m) {
  const long double v = std::ldexp((long double)x * (long double)m.multiplier, m.shift - 31);
  return std::clamp<int64_t>(int64_t(std::nearbyintl(v)), kI32Min, kI32Max);
}

TEST_CASE("multiply_by_quantized_multiplier: one rounding, half to even, of the exact product") {
  Rng rng(4);
  int64_t differs_from_real = 0;
  for (int i = 0; i < 40000; ++i) {
    const double real = std::ldexp(1.0 + rng.uniform(), int(pick(rng, -32, 3)));
    const FixedPointMultiplier m = quantize_multiplier(real);
    const int32_t x = int32_t(pick(rng, kI32Min, kI32Max)), small = int32_t(pick(rng, -(1 << 16), 1 << 16));
    INFO("x ", x, ", small ", small, ", real ", real);
    CHECK(multiply_by_quantized_multiplier(x, m) == exact_round(x, m));
    CHECK(multiply_by_quantized_multiplier(small, m) == exact_round(small, m));
    // Against the real itself: m's 31 bits are the only difference (never more than 1, and
    // then only next to a tie).
    const double v = double(small) * real;
    const double got = multiply_by_quantized_multiplier(small, m);
    if (got != std::nearbyint(v)) {
      ++differs_from_real;
      CHECK(std::fabs(std::fabs(v - std::floor(v)) - 0.5) < 1e-6);
    }
  }
  MESSAGE(differs_from_real, " of 40000 small products differ from round_half_even(x * real)");
  // Ties go to even, on both signs: 0.25 = 2^30 * 2^(-1 - 31) exactly.
  const FixedPointMultiplier quarter = quantize_multiplier(0.25);
  const std::vector<std::pair<int32_t, int32_t>> ties = {{2, 0},  {-2, 0},  {6, 2},   {-6, -2}, {10, 2},
                                                         {-10, -2}, {1, 0}, {3, 1},   {-3, -1}, {100, 25}};
  for (const auto& [x, want] : ties) {
    const int32_t xv = x;
    INFO("x ", xv);
    CHECK(multiply_by_quantized_multiplier(x, quarter) == want);
  }
  CHECK(multiply_by_quantized_multiplier(100, quantize_multiplier(4.0)) == 400);
  CHECK(multiply_by_quantized_multiplier(kI32Max, quantize_multiplier(4.0)) == kI32Max);  // saturates
  CHECK(multiply_by_quantized_multiplier(kI32Min, quantize_multiplier(4.0)) == kI32Min);
  // gemmlowp's double rounding gives -1 here (round(-30 m / 2^31) = -16, then -16 / 32 -> -1):
  // one rounding of -0.4945 gives 0. A real 4-bit layer's multiplier.
  CHECK(multiply_by_quantized_multiplier(-30, {1132768870, -5}) == 0);
}

TEST_CASE("requantize: rounds the exact product once, clamps to the activation range, and transposes") {
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
        const double want = std::clamp<int64_t>(zp + exact_round(acc[size_t(i * n + j)] + bias[size_t(j)], mult[size_t(j)]),
                                                lo, hi);
        const int got = out[size_t(i * n + j)];
        CHECK(got == want);
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

TEST_CASE("linear_s8: equals its reference exactly, and the float64 layer but next to a tie") {
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
        CHECK(matches_real(got, z_out, real * double(sum), act_min, 127));
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

TEST_CASE("conv2d_s8: the integer output equals the float64 convolution rounded, but next to a tie") {
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
          CHECK(matches_real(y.data_as<int8_t>()[((b * O + o) * OH + oh) * OW + ow], z_out, real / s_out, -128, 127));
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

TEST_CASE("avgpool2d_s8: a constant input keeps its value and outputs equal the float64 average rounded, but next to a tie") {
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
        CHECK(matches_real(y.data_as<int8_t>()[(bc * OH + oh) * OW + ow], z_out, sum / area / s_out, -128, 127));
      }
}

TEST_CASE("gemm_s8_acc and gemm_s8_requant: the fused output stage equals requantize() of the exact sums") {
  report_isas();
  Restore restore;
  Rng rng(12);
  for (int trial = 0; trial < 200; ++trial) {
    const int64_t m = pick(rng, 1, 70), k = pick(rng, 1, 90), n = pick(rng, 1, 70);
    const auto a = random_i8(rng, m * k, -128, 127), w = random_i8(rng, n * k, -127, 127);
    const RandomStage r = random_stage(rng, n, trial % 2 == 1);
    std::vector<int32_t> sums(size_t(m * n)), want_acc(size_t(m * n));
    std::vector<int8_t> want(size_t(m * n));
    gemm_s8_reference(a.data(), m, k, w.data(), n, sums.data());
    for (size_t i = 0; i < sums.size(); ++i)
      want_acc[i] = int32_t(std::clamp<int64_t>(int64_t(sums[i]) + r.bias[i % size_t(n)], kI32Min, kI32Max));
    requantize(sums.data(), m, n, r.bias.data(), r.stage, want.data(), false);
    const PackedWeights packed = pack_weights(w.data(), n, k);
    for (Int8Isa isa : supported_isas()) {
      set_num_threads(1 + trial % 2);
      std::vector<int32_t> acc(size_t(m * n), -1);
      std::vector<int8_t> y(size_t(m * n), 0);
      gemm_s8_acc(a.data(), m, k, packed, r.bias.data(), acc.data(), isa);
      gemm_s8_requant(a.data(), m, k, packed, r.bias.data(), r.stage, y.data(), isa);
      INFO("path ", std::string(int8_isa_name(isa)), ", m ", m, ", k ", k, ", n ", n, ", corners ", trial % 2);
      CHECK(acc == want_acc);
      CHECK(y == want);
    }
  }
}

TEST_CASE("gemm_s8_patches: channels x pixels from packed patches equals requantize() of the transposed product, and pairs their max") {
  report_isas();
  Rng rng(13);
  for (int trial = 0; trial < 200; ++trial) {
    const int64_t np = pick(rng, 1, 100), k = pick(rng, 1, 60), n = pick(rng, 1, 45);
    // Rows scattered through one buffer at arbitrary offsets, each readable patch_stride(np)
    // bytes: pack_patches reads through the pointers only.
    const int64_t ldp = patch_stride(np);
    const auto pool = random_i8(rng, (k + 1) * ldp + 64, -128, 127);
    std::vector<const int8_t*> rows(static_cast<size_t>(k));
    for (auto& r : rows) r = pool.data() + pick(rng, 0, k * ldp + 63);
    std::vector<int8_t> a(size_t(np * k));  // (np, k): pixel p's window
    for (int64_t p = 0; p < np; ++p)
      for (int64_t kk = 0; kk < k; ++kk) a[size_t(p * k + kk)] = rows[size_t(kk)][p];
    const auto w = random_i8(rng, n * k, -127, 127);
    const RandomStage r = random_stage(rng, n, trial % 2 == 1);
    std::vector<int32_t> sums(size_t(np * n));
    std::vector<int8_t> want(size_t(n * np));
    gemm_s8_reference(a.data(), np, k, w.data(), n, sums.data());
    requantize(sums.data(), np, n, r.bias.data(), r.stage, want.data(), /*transpose=*/true);
    const PackedWeights packed = pack_weights(w.data(), n, k);
    for (Int8Isa isa : supported_isas()) {
      std::vector<int8_t> patches(size_t(patch_bytes(k, np)));
      pack_patches(rows.data(), k, np, isa, patches.data());
      const int64_t ldy = np + pick(rng, 0, 5);
      std::vector<int8_t> y(size_t(n * ldy), 99);
      gemm_s8_patches(packed, patches.data(), np, r.bias.data(), r.stage, y.data(), ldy, isa);
      INFO("path ", std::string(int8_isa_name(isa)), ", np ", np, ", k ", k, ", n ", n, ", corners ", trial % 2);
      bool same = true, untouched = true;
      for (int64_t j = 0; j < n; ++j)
        for (int64_t p = 0; p < ldy; ++p) {
          if (p < np) same = same && y[size_t(j * ldy + p)] == want[size_t(j * np + p)];
          else untouched = untouched && y[size_t(j * ldy + p)] == 99;  // the row stride's gap stays
        }
      CHECK(same);
      CHECK(untouched);
      // Pairs of neighbouring pixels, max of the exact sums (the last pair of an odd np is
      // half outside and unspecified).
      const int64_t ld = (np + 1) / 2 + pick(rng, 0, 3);
      std::vector<int32_t> pairs(size_t(n * ld), -7);
      gemm_s8_patches_pairmax(packed, patches.data(), np, pairs.data(), ld, isa);
      bool pair_max = true;
      for (int64_t j = 0; j < n; ++j)
        for (int64_t p = 0; p + 1 < np; p += 2)
          pair_max = pair_max && pairs[size_t(j * ld + p / 2)] ==
                                     std::max(sums[size_t(p * n + j)], sums[size_t((p + 1) * n + j)]);
      CHECK(pair_max);
    }
  }
}

TEST_CASE("gemm_s8_patches_pairmax: pairs compare exact sums, also where the VNNI path's raw sums wrap") {
  report_isas();
  // x + 128 = 255 against w = 127 over k = 70000: the raw vpdpbusd sum 255 * 127 * k passes
  // 2^31 and wraps, while pixel 1's (228 * 127 * k) does not; the exact sums (127 and 100 times
  // 127 * k) fit, and pixel 0's is the larger.
  const int64_t k = 70000, np = 2;
  const std::vector<int8_t> w(size_t(k), 127);
  std::vector<int8_t> rows_data(size_t(k * patch_stride(np)));
  std::vector<const int8_t*> rows(static_cast<size_t>(k));
  for (int64_t kk = 0; kk < k; ++kk) {
    int8_t* r = rows_data.data() + kk * patch_stride(np);
    std::fill(r, r + patch_stride(np), int8_t(0));
    r[0] = 127;
    r[1] = 100;
    rows[size_t(kk)] = r;
  }
  const PackedWeights packed = pack_weights(w.data(), 1, k);
  for (Int8Isa isa : supported_isas()) {
    std::vector<int8_t> patches(size_t(patch_bytes(k, np)));
    pack_patches(rows.data(), k, np, isa, patches.data());
    int32_t pair = 0;
    gemm_s8_patches_pairmax(packed, patches.data(), np, &pair, 1, isa);
    INFO("path ", std::string(int8_isa_name(isa)));
    CHECK(int64_t(pair) == int64_t(127) * 127 * k);
  }
}

TEST_CASE("requantize_max_rows: the max of two rows through requantize_value, corners included") {
  report_isas();
  Rng rng(17);
  for (int trial = 0; trial < 100; ++trial) {
    const int64_t n = pick(rng, 1, 40), rows = pick(rng, 1, 6), len = pick(rng, 1, 40);
    const int64_t ld_row = len + pick(rng, 0, 3), lda = 2 * rows * ld_row + pick(rng, 0, 3);
    const RandomStage r = random_stage(rng, n, trial % 2 == 1);
    // Either sums of k products (|acc| <= 128 * 127 * k, as the kernel is told) or any int32.
    const bool big = trial % 4 < 2;
    const int64_t k = pick(rng, 1, 200);
    const int64_t bound = 128 * 127 * k;
    std::vector<int32_t> acc(size_t(n * lda));
    for (auto& v : acc)
      v = big ? (rng.below(10) == 0 ? (rng.below(2) ? kI32Max : kI32Min) : int32_t(pick(rng, -3000000, 3000000)))
              : int32_t(rng.below(8) == 0 ? (rng.below(2) ? bound : -bound) : pick(rng, -bound, bound));
    std::vector<int8_t> want(size_t(n * rows * len));
    for (int64_t j = 0; j < n; ++j)
      for (int64_t q = 0; q < rows; ++q)
        for (int64_t i = 0; i < len; ++i) {
          const int32_t* a = acc.data() + j * lda + 2 * q * ld_row + i;
          want[size_t((j * rows + q) * len + i)] =
              requantize_value(std::max(a[0], a[ld_row]), r.bias[size_t(j)], r.stage.multiplier[size_t(j)],
                               r.stage.zero_point, r.stage.act_min, r.stage.act_max);
        }
    for (Int8Isa isa : supported_isas()) {
      std::vector<int8_t> y(size_t(n * rows * len));
      requantize_max_rows(acc.data(), n, rows, len, lda, ld_row, big ? -1 : k, r.bias.data(), r.stage, y.data(), isa);
      INFO("path ", std::string(int8_isa_name(isa)), ", n ", n, ", rows ", rows, ", len ", len, ", corners ", trial % 2,
           ", k ", (big ? -1 : k));
      CHECK(y == want);
    }
  }
  // requantize_value is requantize()'s element.
  const RandomStage r = random_stage(rng, 3, true);
  const std::vector<int32_t> acc = {kI32Max, -5, 123456, kI32Min, 0, 777};
  std::vector<int8_t> want(6);
  requantize(acc.data(), 2, 3, r.bias.data(), r.stage, want.data(), false);
  for (size_t i = 0; i < 6; ++i)
    CHECK(want[i] == requantize_value(acc[i], r.bias[i % 3], r.stage.multiplier[i % 3], r.stage.zero_point,
                                      r.stage.act_min, r.stage.act_max));
}

TEST_CASE("conv2d_s8 and conv2d_maxpool_s8: every kernel path equals the reference conv, then the plain max pool") {
  report_isas();
  Restore restore;
  Rng rng(14);
  auto run = [&](int64_t B, int64_t C, int64_t H, int64_t W, int64_t O, int KH, int KW, const Conv2dParams& p,
                 const Pool2dParams& pool) {
    const int32_t z_in = int32_t(pick(rng, -128, 127));
    const Tensor x = tensor_i8({B, C, H, W}, random_i8(rng, B * C * H * W, -128, 127));
    const Tensor w = tensor_i8({O, C, KH, KW}, random_i8(rng, O * C * KH * KW, -127, 127));
    const RandomStage r = random_stage(rng, O, rng.below(4) == 0, 1 << 24);  // room for folding z_in
    const Tensor want = conv2d_s8_reference(x, z_in, w, r.bias, p, r.stage);
    const int64_t OH = want.size(2), OW = want.size(3);
    const bool poolable = OH + 2 * pool.pad_h >= pool.kernel_h && OW + 2 * pool.pad_w >= pool.kernel_w;
    const Tensor want_pooled = poolable ? maxpool2d_s8(want, pool) : Tensor();
    const PackedWeights packed = pack_weights(w);
    for (Int8Isa isa : supported_isas())
      for (int threads : {1, 2}) {
        set_int8_isa(isa);
        set_num_threads(threads);
        INFO("x ", shape_str(x.shape()), ", w ", shape_str(w.shape()), ", stride ", p.stride_h, "x", p.stride_w,
             ", pad ", p.pad_h, "x", p.pad_w, ", pool ", pool.kernel_h, "x", pool.kernel_w, " stride ", pool.stride_h,
             "x", pool.stride_w, " pad ", pool.pad_h, "x", pool.pad_w, ", path ", std::string(int8_isa_name(isa)), ", threads ",
             threads);
        const Tensor y = conv2d_s8(x, z_in, packed, r.bias, p, r.stage);
        REQUIRE(y.shape() == want.shape());
        CHECK(std::equal(y.data_as<int8_t>(), y.data_as<int8_t>() + y.numel(), want.data_as<int8_t>()));
        if (!poolable) continue;
        const Tensor yp = conv2d_maxpool_s8(x, z_in, packed, r.bias, p, r.stage, pool);
        REQUIRE(yp.shape() == want_pooled.shape());
        CHECK(std::equal(yp.data_as<int8_t>(), yp.data_as<int8_t>() + yp.numel(), want_pooled.data_as<int8_t>()));
      }
  };
  for (int trial = 0; trial < 50; ++trial) {
    Conv2dParams p;
    p.stride_h = int(pick(rng, 1, 3)) == 3 ? 2 : 1;  // stride 1 (read in place) two times in three
    p.stride_w = rng.below(3) == 0 ? 2 : p.stride_h;
    p.pad_h = int(pick(rng, 0, 2));
    p.pad_w = int(pick(rng, 0, 2));
    Pool2dParams pool;  // 2x2 stride 2 (the fast path) half the time
    if (rng.below(2)) {
      pool.kernel_h = int(pick(rng, 1, 3));
      pool.kernel_w = int(pick(rng, 1, 3));
      pool.stride_h = int(pick(rng, 1, 3));
      pool.stride_w = int(pick(rng, 1, 3));
      pool.pad_h = int(pick(rng, 0, pool.kernel_h / 2));
      pool.pad_w = int(pick(rng, 0, pool.kernel_w / 2));
    }
    const int KH = int(pick(rng, 1, 5)), KW = int(pick(rng, 1, 5));
    const int64_t H = pick(rng, std::max<int64_t>(1, KH - 2 * p.pad_h), 20);
    const int64_t W = pick(rng, std::max<int64_t>(1, KW - 2 * p.pad_w), 40);
    run(pick(rng, 1, 5), pick(rng, 1, 6), H, W, pick(rng, 1, 40), KH, KW, p, pool);
  }
  // LeNet's two layers, and one big enough to be cut into several row chunks per image.
  run(4, 1, 28, 28, 6, 5, 5, Conv2dParams{1, 1, 2, 2}, Pool2dParams{});
  run(4, 6, 14, 14, 16, 5, 5, Conv2dParams{}, Pool2dParams{});
  run(2, 64, 30, 30, 35, 3, 3, Conv2dParams{1, 1, 1, 1}, Pool2dParams{});
  run(2, 48, 31, 23, 20, 3, 3, Conv2dParams{2, 1, 0, 2}, Pool2dParams{});
}

TEST_CASE("maxpool2d_s8: the 2x2 stride-2 fast path equals the window maximum on wide and odd planes") {
  Rng rng(15);
  for (int64_t W : {2, 3, 7, 8, 9, 10, 15, 16, 17, 28, 31, 33, 64, 100})
    for (int64_t H : {2, 3, 5}) {
      const int64_t B = 2, C = 3;
      const auto xv = random_i8(rng, B * C * H * W, -128, 127);
      const Tensor y = maxpool2d_s8(tensor_i8({B, C, H, W}, xv), Pool2dParams{});
      const int64_t OH = H / 2, OW = W / 2;
      REQUIRE(y.shape() == Shape{B, C, OH, OW});
      bool same = true;
      for (int64_t bc = 0; bc < B * C; ++bc)
        for (int64_t oh = 0; oh < OH; ++oh)
          for (int64_t ow = 0; ow < OW; ++ow) {
            const int8_t* r0 = xv.data() + (bc * H + 2 * oh) * W + 2 * ow;
            const int8_t best = std::max({r0[0], r0[1], r0[W], r0[W + 1]});
            same = same && y.data_as<int8_t>()[(bc * OH + oh) * OW + ow] == best;
          }
      INFO("H ", H, ", W ", W);
      CHECK(same);
    }
}

TEST_CASE("Int8Model: quantize_images is the table lookup, and forward_raw is the same for any thread count") {
  report_isas();
  Restore restore;
  Rng rng(16);
  // conv -> relu6-like clamp -> maxpool -> flatten -> linear -> logits, built by hand.
  Int8Model m;
  m.input_shape = {2, 12, 10};
  m.input_scale = 0.02f;
  m.input_zero_point = -3;
  m.input_mean = {0.5f, 0.5f};
  m.input_std = {0.25f, 0.25f};
  m.input_lut = random_i8(rng, 2 * 256, -128, 127);
  Int8Layer conv;
  conv.op = Int8Layer::Op::conv2d;
  conv.weight = tensor_i8({5, 2, 3, 3}, random_i8(rng, 5 * 2 * 9, -127, 127));
  conv.weight_scale.assign(5, 0.01f);
  conv.bias = Tensor::from_i32({5}, std::vector<int32_t>{100, -50, 0, 7, -300});
  conv.conv = Conv2dParams{1, 1, 1, 1};
  conv.in_scale = m.input_scale;
  conv.in_zero_point = m.input_zero_point;
  conv.out_scale = 0.05f;
  conv.out_zero_point = -10;
  conv.act_min = -10;
  conv.act_max = 110;
  Int8Layer pool;
  pool.op = Int8Layer::Op::maxpool2d;
  Int8Layer flatten;
  flatten.op = Int8Layer::Op::flatten;
  Int8Layer fc;
  fc.op = Int8Layer::Op::linear;
  fc.weight = tensor_i8({7, 5 * 6 * 5}, random_i8(rng, 7 * 150, -127, 127));
  fc.weight_scale.assign(7, 0.003f);
  fc.bias = Tensor::from_i32({7}, std::vector<int32_t>(7, 25));
  fc.logits = true;
  fc.in_scale = conv.out_scale;
  fc.in_zero_point = conv.out_zero_point;
  m.layers = {conv, pool, flatten, fc};
  m.prepare();

  const int64_t B = 37;
  std::vector<uint8_t> images(size_t(B * 2 * 12 * 10));
  for (auto& v : images) v = uint8_t(rng.below(256));
  const Tensor ref = m.forward_raw(m.quantize_images(images.data(), B), /*reference=*/true);
  for (Int8Isa isa : supported_isas())
    for (int threads : {1, 2}) {
      set_int8_isa(isa);
      set_num_threads(threads);
      const Tensor q = m.quantize_images(images.data(), B);
      bool lookup = true;
      for (int64_t i = 0; i < q.numel(); ++i)
        lookup = lookup && q.data_as<int8_t>()[i] == m.input_lut[size_t((i / 120) % 2 * 256 + images[size_t(i)])];
      INFO("path ", std::string(int8_isa_name(isa)), ", threads ", threads);
      CHECK(lookup);
      const Tensor raw = m.forward_raw(q);
      REQUIRE(raw.shape() == ref.shape());
      CHECK(std::equal(raw.data_as<int32_t>(), raw.data_as<int32_t>() + raw.numel(), ref.data_as<int32_t>()));
      std::vector<Tensor> trace;
      const Tensor traced = m.forward_raw(q, false, &trace);  // layer by layer, conv output kept
      CHECK(trace.size() == 4);
      CHECK(std::equal(traced.data_as<int32_t>(), traced.data_as<int32_t>() + traced.numel(), ref.data_as<int32_t>()));
    }
}
