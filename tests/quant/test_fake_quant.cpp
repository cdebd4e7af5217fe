// QuantSpec ranges, choose_qparams, and fake-quant as an autograd op with the straight-through
// estimator (DESIGN.md, ideas 2 and 6). Finite differences mean nothing through round(), so
// the tests assert exact properties: round-trip error <= scale / 2, saturated values on the
// range ends, 0 exact in affine mode, the STE gradient equal to dy (or its mask) bit for bit.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/ops.h"
#include "quant/fake_quant.h"
#include "quant/fake_quant_module.h"
#include "tests/support/tensors.h"
#include "tests/support/thread_replicas.h"
#include "tests/support/threads.h"

using namespace crayon;
using crayon::testing::bitwise_equal;

namespace {

QuantSpec make_spec(int bits, bool symmetric, bool narrow = false, int axis = -1,
                    Rounding r = Rounding::nearest_even) {
  QuantSpec s;
  s.bits = bits;
  s.symmetric = symmetric;
  s.narrow_range = narrow;
  s.axis = axis;
  s.rounding = r;
  return s;
}

// The oracle: the formula written out, the channel found by unravelling the multi-index
// (not by the library's (i / inner) % C).
Tensor naive_fake_quant(const Tensor& x, const QParams& qp, const QuantSpec& spec, Rng* rng = nullptr) {
  Tensor y = Tensor::empty(x.shape());
  for (int64_t i = 0; i < x.numel(); ++i) {
    size_t c = 0;
    if (qp.axis >= 0) {
      int64_t rest = i;
      for (int d = x.ndim() - 1; d >= 0; --d) {
        const int64_t idx = rest % x.size(d);
        rest /= x.size(d);
        if (d == qp.axis) c = size_t(idx);
      }
    }
    const float s = qp.scale[c], z = float(qp.zero_point[c]);
    float q = round_value(x.data()[i] / s, spec.rounding, rng) + z;
    q = std::fmin(std::fmax(q, float(spec.qmin())), float(spec.qmax()));
    y.data()[i] = (q - z) * s;
  }
  return y;
}

}  // namespace

TEST_CASE("quant spec: integer ranges are signed, narrow drops -2^(b-1), for every bit width 2..8") {
  for (int b = 2; b <= 8; ++b) {
    INFO("bits = ", b);
    const int32_t h = 1 << (b - 1);
    CHECK(make_spec(b, true).qmin() == -h);
    CHECK(make_spec(b, true).qmax() == h - 1);
    CHECK(make_spec(b, true, true).qmin() == -(h - 1));
    CHECK(make_spec(b, false).qmin() == -h);  // affine: same signed range, with a zero point
    CHECK(make_spec(b, false).qmax() == h - 1);
  }
  CHECK(make_spec(8, true).qmin() == -128);
  CHECK(make_spec(8, true, true).qmin() == -127);
  CHECK(make_spec(2, true, true).qmin() == -1);  // ternary
}

TEST_CASE("quant spec: bit widths outside 2..8 and bad axes are rejected with the value named") {
  CHECK_THROWS_WITH_AS(make_spec(1, true).validate(), doctest::Contains("got 1"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(make_spec(9, true).qmax(), doctest::Contains("got 9"), std::invalid_argument);
  CHECK_THROWS_AS(make_spec(8, true, false, -2).validate(), std::invalid_argument);
}

TEST_CASE("quant spec: the command-line form parses and describes itself") {
  const QuantSpec s = parse_quant_spec("bits=4,affine,narrow,axis=0,rounding=stochastic");
  CHECK(s.bits == 4);
  CHECK_FALSE(s.symmetric);
  CHECK(s.narrow_range);
  CHECK(s.axis == 0);
  CHECK(s.rounding == Rounding::stochastic);
  CHECK(describe(s) == "int4 affine narrow per-channel(axis 0) stochastic");
  CHECK(describe(QuantSpec{}) == "int8 symmetric per-tensor nearest-even");
  CHECK_THROWS_WITH_AS(parse_quant_spec("bits=12"), doctest::Contains("12"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(parse_quant_spec("bits=x"), doctest::Contains("bits=x"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(parse_quant_spec("fast"), doctest::Contains("'fast'"), std::invalid_argument);
}

TEST_CASE("choose_qparams: symmetric uses max|x| / qmax and zero point 0") {
  const QParams qp = choose_qparams(-3.f, 2.54f, make_spec(8, true));
  CHECK(qp.axis == -1);
  CHECK(qp.scale == std::vector<float>{3.f / 127.f});
  CHECK(qp.zero_point == std::vector<int32_t>{0});
  CHECK(choose_qparams(-1.f, 2.f, make_spec(4, true)).scale[0] == 2.f / 7.f);
}

TEST_CASE("choose_qparams: affine spreads min..max over qmax - qmin steps and nudges the zero point to an integer") {
  // [-1, 3] on [-128, 127]: scale = 4 / 255, real zero point -128 + 1 / scale = -64.25 -> -64.
  const QParams qp = choose_qparams(-1.f, 3.f, make_spec(8, false));
  CHECK(qp.scale[0] == float(4.0 / 255.0));
  CHECK(qp.zero_point[0] == -64);
  // A range without 0 is extended to include it: [2, 5] -> [0, 5], zero point at qmin.
  const QParams pos = choose_qparams(2.f, 5.f, make_spec(8, false));
  CHECK(pos.scale[0] == float(5.0 / 255.0));
  CHECK(pos.zero_point[0] == -128);
  const QParams neg = choose_qparams(-6.f, -2.f, make_spec(8, false));
  CHECK(neg.zero_point[0] == 127);
}

TEST_CASE("choose_qparams: an all-zero range gets scale 1, bad ranges are rejected") {
  CHECK(choose_qparams(0.f, 0.f, make_spec(8, true)).scale[0] == 1.f);
  const QParams a = choose_qparams(0.f, 0.f, make_spec(8, false));
  CHECK(a.scale[0] == 1.f);
  CHECK(a.zero_point[0] == -128);
  CHECK(choose_qparams(-1e-30f, 1e-30f, make_spec(8, true)).scale[0] == kMinScale);
  CHECK_THROWS_AS(choose_qparams(1.f, -1.f, make_spec(8, true)), std::invalid_argument);
  CHECK_THROWS_AS(choose_qparams(0.f, NAN, make_spec(8, true)), std::invalid_argument);
  CHECK_THROWS_AS(choose_qparams(-INFINITY, 0.f, make_spec(8, false)), std::invalid_argument);
}

TEST_CASE("fake_quant: the output is exactly (clamp(round(x / scale) + z, qmin, qmax) - z) * scale in every rounding mode") {
  const Tensor x = crayon::testing::uniform({7, 9}, 11, -3.f, 3.f);
  for (bool symmetric : {true, false})
    for (Rounding r : {Rounding::nearest_even, Rounding::nearest_away, Rounding::stochastic}) {
      INFO("symmetric ", symmetric, ", rounding ", std::string(rounding_name(r)));
      const QuantSpec spec = make_spec(4, symmetric, false, -1, r);
      const QParams qp = choose_qparams(-2.f, 1.5f, spec);  // both ends saturate some of x
      Rng r1(5), r2(5);
      const Variable y = fake_quant(Variable(x), qp, spec, Ste::plain, &r1);
      CHECK(bitwise_equal(y.value(), naive_fake_quant(x, qp, spec, &r2)));
    }
}

TEST_CASE("fake_quant: in-range values round-trip within scale / 2 (nearest) and below scale (stochastic)") {
  for (bool symmetric : {true, false})
    for (int bits : {2, 4, 8}) {
      const QuantSpec spec = make_spec(bits, symmetric);
      const QParams qp = choose_qparams(-1.3f, 2.1f, spec);
      const float s = qp.scale[0], z = float(qp.zero_point[0]);
      const float lo = (float(spec.qmin()) - z) * s, hi = (float(spec.qmax()) - z) * s;
      const Tensor x = crayon::testing::uniform({4000}, 3, lo, hi);
      Rng rng(1);
      for (Rounding r : {Rounding::nearest_even, Rounding::nearest_away, Rounding::stochastic}) {
        QuantSpec sr = spec;
        sr.rounding = r;
        const Tensor y = fake_quant_values(x, qp, sr, &rng);
        double worst = 0;
        for (int64_t i = 0; i < x.numel(); ++i) worst = std::max(worst, std::fabs(double(x.data()[i]) - y.data()[i]));
        INFO("bits ", bits, ", symmetric ", symmetric, ", ", std::string(rounding_name(r)), ": worst error ", worst,
             ", scale ", s);
        // Up to float rounding of x / scale and (q - z) * scale (relative 1e-4 of the bound).
        if (r == Rounding::stochastic) CHECK(worst < s * (1 + 1e-4));
        else CHECK(worst <= 0.5 * s * (1 + 1e-4));
      }
    }
}

TEST_CASE("fake_quant: saturated values land exactly on the range ends") {
  for (bool symmetric : {true, false}) {
    const QuantSpec spec = make_spec(8, symmetric);
    const QParams qp = choose_qparams(-0.7f, 1.9f, spec);
    const float s = qp.scale[0], z = float(qp.zero_point[0]);
    const float lo = (float(spec.qmin()) - z) * s, hi = (float(spec.qmax()) - z) * s;
    const Tensor x = Tensor::from({6}, {hi + s, hi * 3.f, 1e30f, lo - s, lo * 5.f, -1e30f});
    const Tensor y = fake_quant_values(x, qp, spec);
    for (int i = 0; i < 3; ++i) CHECK(y.data()[i] == hi);
    for (int i = 3; i < 6; ++i) CHECK(y.data()[i] == lo);
  }
}

TEST_CASE("fake_quant: 0 is exactly representable in affine mode for any range") {
  Rng rng(17);
  for (int trial = 0; trial < 500; ++trial) {
    const float a = rng.uniform(-10.f, 10.f), b = rng.uniform(-10.f, 10.f);
    const QuantSpec sp = make_spec(2 + int(rng.below(7)), false);
    const QParams qp = choose_qparams(std::min(a, b), std::max(a, b), sp);
    INFO("range [", std::min(a, b), ", ", std::max(a, b), "], scale ", qp.scale[0], ", zero point ", qp.zero_point[0]);
    CHECK(qp.zero_point[0] >= sp.qmin());
    CHECK(qp.zero_point[0] <= sp.qmax());
    const Tensor y = fake_quant_values(Tensor::from({3}, {0.f, -0.f, 0.f}), qp, sp);
    CHECK(y.data()[0] == 0.f);
    CHECK(y.data()[1] == 0.f);
  }
}

TEST_CASE("fake_quant: rounding modes differ on ties as specified") {
  QuantSpec spec = make_spec(8, true);
  const QParams qp{{0.5f}, {0}, -1};
  const Tensor x = Tensor::from({3}, {1.25f, -1.25f, 0.75f});  // x / scale = 2.5, -2.5, 1.5
  CHECK(fake_quant_values(x, qp, spec).values()[0] == 1.f);  // 2.5 -> 2
  CHECK(fake_quant_values(x, qp, spec).values()[1] == -1.f);
  CHECK(fake_quant_values(x, qp, spec).values()[2] == 1.f);  // 1.5 -> 2
  spec.rounding = Rounding::nearest_away;
  CHECK(fake_quant_values(x, qp, spec).values()[0] == 1.5f);  // 2.5 -> 3
  CHECK(fake_quant_values(x, qp, spec).values()[1] == -1.5f);
}

TEST_CASE("fake_quant: per-channel scales apply per channel, along any axis") {
  // x: (3, 4, 5); axis 1 has 4 channels with very different scales.
  const Tensor x = crayon::testing::uniform({3, 4, 5}, 21, -2.f, 2.f);
  const QuantSpec spec = make_spec(4, true, false, 1);
  const QParams qp{{0.01f, 0.1f, 0.3f, 1.f}, {0, 0, 0, 0}, 1};
  const Tensor y = fake_quant_values(x, qp, spec);
  CHECK(bitwise_equal(y, naive_fake_quant(x, qp, spec)));
  // Channel 0 (scale 0.01) saturates at 0.07; channel 3 (scale 1) rounds to integers.
  for (int64_t b = 0; b < 3; ++b)
    for (int64_t k = 0; k < 5; ++k) {
      CHECK(std::fabs(y.at({b, 0, k})) <= 0.08f);
      CHECK(y.at({b, 3, k}) == std::nearbyint(x.at({b, 3, k})));
    }
  // Axis 0: each row quantized per channel equals that row quantized per tensor with its own scale.
  const QuantSpec spec0 = make_spec(8, false, false, 0);
  const Tensor w = crayon::testing::uniform({3, 10}, 5, -1.f, 1.f);
  const QParams qp0{{0.02f, 0.005f, 0.1f}, {3, -20, 0}, 0};
  const Tensor yw = fake_quant_values(w, qp0, spec0);
  for (int64_t c = 0; c < 3; ++c) {
    const QParams one{{qp0.scale[size_t(c)]}, {qp0.zero_point[size_t(c)]}, -1};
    CHECK(bitwise_equal(yw.slice(c, c + 1), fake_quant_values(w.slice(c, c + 1), one, make_spec(8, false))));
  }
}

TEST_CASE("fake_quant: quantize and dequantize give the integers and reproduce the fake-quantized values") {
  const QuantSpec spec = make_spec(8, false, false, 0);
  const Tensor w = crayon::testing::uniform({3, 10}, 6, -3.f, 3.f);
  const QParams qp{{0.02f, 0.005f, 0.1f}, {3, -20, 0}, 0};
  const Tensor q = quantize(w, qp, spec);
  CHECK(q.dtype() == DType::i32);
  for (int64_t i = 0; i < q.numel(); ++i) {
    CHECK(q.data_as<int32_t>()[i] >= -128);
    CHECK(q.data_as<int32_t>()[i] <= 127);
  }
  CHECK(bitwise_equal(dequantize(q, qp), fake_quant_values(w, qp, spec)));
  CHECK_THROWS_AS(quantize(Tensor::from({1}, {NAN}), QParams{{1.f}, {0}, -1}, make_spec(8, false)),
                  std::invalid_argument);
}

TEST_CASE("fake_quant: plain STE passes the incoming gradient through unchanged, bit for bit") {
  const QuantSpec spec = make_spec(4, false);
  const QParams qp = choose_qparams(-0.5f, 0.8f, spec);
  const Tensor x = crayon::testing::uniform({5, 8}, 2, -2.f, 2.f);  // many saturate
  const Tensor dy = crayon::testing::normal({5, 8}, 77);
  Variable xv(x, true);
  fake_quant(xv, qp, spec, Ste::plain).backward(dy);
  CHECK(bitwise_equal(xv.grad(), dy));
  // Gradients accumulate: a second pass adds dy again.
  fake_quant(xv, qp, spec, Ste::plain).backward(dy);
  Tensor twice = dy.clone();
  for (float& v : twice.values()) v += v;
  CHECK(bitwise_equal(xv.grad(), twice));
}

TEST_CASE("fake_quant: clipped STE passes dy where round(x / scale) + z needed no clamping and 0 elsewhere") {
  for (bool symmetric : {true, false})
    for (Rounding r : {Rounding::nearest_even, Rounding::stochastic}) {
      const QuantSpec spec = make_spec(3, symmetric, false, -1, r);
      const QParams qp = choose_qparams(-0.9f, 0.6f, spec);
      const Tensor x = crayon::testing::uniform({6, 7}, 8, -1.5f, 1.5f);
      const Tensor dy = crayon::testing::normal({6, 7}, 9);
      Rng r1(31), r2(31);
      Variable xv(x, true);
      fake_quant(xv, qp, spec, Ste::clipped, &r1).backward(dy);
      Tensor want = Tensor::empty(x.shape());
      int64_t kept = 0;
      for (int64_t i = 0; i < x.numel(); ++i) {
        const float q = round_value(x.data()[i] / qp.scale[0], r, &r2) + float(qp.zero_point[0]);
        const bool inside = q >= float(spec.qmin()) && q <= float(spec.qmax());
        want.data()[i] = inside ? dy.data()[i] : 0.f;
        kept += inside;
      }
      INFO("symmetric ", symmetric, ", ", std::string(rounding_name(r)), ": ", kept, " of ", x.numel(), " inside");
      CHECK(kept > 5);
      CHECK(kept < x.numel() - 5);
      CHECK(bitwise_equal(xv.grad(), want));
    }
}

TEST_CASE("fake_quant: for clipped STE a value that rounds onto qmin or qmax counts as inside") {
  // scale 1, int8 symmetric: [-128, 127].
  const QuantSpec spec = make_spec(8, true);
  const QParams qp{{1.f}, {0}, -1};
  //                                   127 -> in, 127.4 -> 127 in, 127.5 -> 128 (even) out,
  //                                   -128.5 -> -128 (even) in, -128.6 -> -129 out, 128 out
  const Tensor x = Tensor::from({6}, {127.f, 127.4f, 127.5f, -128.5f, -128.6f, 128.f});
  Variable xv(x, true);
  fake_quant(xv, qp, spec, Ste::clipped).backward(Tensor::ones({6}));
  CHECK(std::vector<float>(xv.grad().values().begin(), xv.grad().values().end()) ==
        std::vector<float>{1, 1, 0, 1, 0, 0});
}

TEST_CASE("fake_quant: the vectorized round-half-even loop agrees bit for bit with the generic loop on ties, zeros, huge values, NaN and infinities") {
  // fake_quant's nearest-even loop rounds with one instruction on AVX2 / AVX-512 (nearbyint)
  // and clamps with a min and a max; fake_quant_values runs the generic per-element loop
  // (round_half_even_fast, a nested select). Both must give the same bits, and the clipped
  // STE's mask must be the oracle's. Values: every tie k + 1/2 of the grid and beyond it,
  // values that round to -0, |x / scale| in [2^22, 2^23) with a half fraction, huge values,
  // subnormals, NaN and infinities; 4 channels of 301 (vector bodies and odd tails).
#if defined(__x86_64__)
  MESSAGE("nearest-even loop on this CPU: ", std::string(__builtin_cpu_supports("avx512f") ? "AVX-512"
                                             : __builtin_cpu_supports("avx2")  ? "AVX2" : "baseline"));
#endif
  const int64_t C = 4, K = 301;
  const float scales[C] = {0.25f, 0.0137f, 3.f, 1e-3f};
  Tensor x = Tensor::empty({C, K});
  Rng rng(12);
  for (int64_t c = 0; c < C; ++c) {
    float* row = x.data() + c * K;
    const float s = scales[c];
    for (int64_t k = 0; k < K; ++k) {
      const int64_t j = k % 12, m = k / 12;  // the kind of value, and which of its kind
      const float t = float(m * 11 - 140) + 0.5f;  // ties from -139.5 to 135.5
      row[k] = j == 0 ? t * s
             : j == 1 ? -0.3f * s
             : j == 2 ? (0x1p22f + 0.5f + float(m)) * s * (m % 2 ? 1.f : -1.f)
             : j == 3 ? (m % 2 ? 1e30f : -1e30f)
             : j == 4 ? 1e-40f * float(m % 3 - 1)
             : j == 5 ? -0.f
             : j == 6 ? (m % 4 == 0 ? NAN : m % 4 == 1 ? INFINITY : m % 4 == 2 ? -INFINITY : 0.f)
                      : (rng.uniform() * 300.f - 150.f) * s;
    }
  }
  for (bool symmetric : {true, false}) {
    const QuantSpec per_channel = make_spec(8, symmetric, symmetric, 0);
    QParams qp{{}, {}, 0};
    for (int64_t c = 0; c < C; ++c) {
      qp.scale.push_back(scales[c]);
      qp.zero_point.push_back(symmetric ? 0 : int32_t(c * 7 - 10));
    }
    const QuantSpec per_tensor = make_spec(8, symmetric);
    const QParams qt{{0.25f}, {symmetric ? 0 : 5}, -1};  // a power of two: channel 0's ties stay exact ties
    for (const auto& case_ : {std::pair{per_channel, qp}, std::pair{per_tensor, qt}}) {
      const QuantSpec& spec = case_.first;
      const QParams& q = case_.second;
      INFO("symmetric ", symmetric, ", axis ", q.axis);
      Variable xv(x, true);
      Variable y = fake_quant(xv, q, spec, Ste::clipped);
      CHECK(bitwise_equal(y.value(), fake_quant_values(x, q, spec)));
      CHECK(bitwise_equal(fake_quant(Variable(x), q, spec, Ste::plain).value(), y.value()));
      y.backward(Tensor::ones(x.shape()));
      int64_t kept = 0, differ = 0;
      for (int64_t i = 0; i < x.numel(); ++i) {
        const size_t c = q.axis < 0 ? 0 : size_t(i / K);
        const float r = round_value(x.data()[i] / q.scale[c], Rounding::nearest_even, nullptr) + float(q.zero_point[c]);
        const bool inside = r >= float(spec.qmin()) && r <= float(spec.qmax());
        kept += inside;
        differ += xv.grad().data()[i] != (inside ? 1.f : 0.f);
      }
      CHECK(differ == 0);
      CHECK(kept > 100);
      CHECK(kept < x.numel() - 100);
    }
  }
}

TEST_CASE("fake_quant: mismatched scales, bad zero points and a missing generator are rejected") {
  const Variable x(Tensor::zeros({2, 3}));
  const QuantSpec pc = make_spec(8, true, false, 1);
  CHECK_THROWS_WITH_AS(fake_quant(x, QParams{{1.f, 1.f}, {0, 0}, 1}, pc), doctest::Contains("need 3"),
                       std::invalid_argument);
  CHECK_THROWS_AS(fake_quant(x, QParams{{1.f, 1.f, 1.f}, {0, 0, 0}, 2}, pc), std::invalid_argument);
  CHECK_THROWS_AS(fake_quant(x, QParams{{0.f}, {0}, -1}, make_spec(8, true)), std::invalid_argument);
  CHECK_THROWS_AS(fake_quant(x, QParams{{-1.f}, {0}, -1}, make_spec(8, true)), std::invalid_argument);
  CHECK_THROWS_AS(fake_quant(x, QParams{{1.f}, {3}, -1}, make_spec(8, true)), std::invalid_argument);
  CHECK_THROWS_AS(fake_quant(x, QParams{{1.f}, {200}, -1}, make_spec(8, false)), std::invalid_argument);
  CHECK_THROWS_AS(fake_quant(x, QParams{{1.f, 2.f}, {0, 0}, -1}, make_spec(8, true)), std::invalid_argument);
  CHECK_THROWS_AS(fake_quant(x, QParams{{1.f}, {0}, -1}, make_spec(8, true, false, -1, Rounding::stochastic)),
                  std::invalid_argument);
  CHECK(parse_ste("clipped") == Ste::clipped);
  CHECK_THROWS_AS(parse_ste("none"), std::invalid_argument);
}


TEST_CASE("tensor_ranges: per-channel ranges along every axis equal a plain loop's and a NaN anywhere is found") {
  // Runs of 1, 3, 21, 37 and 130 values (below, at and past the 16 lanes, with tails), random
  // values with each channel's extremes planted at the last element of its last run (a
  // tail, or the last lane); then a NaN first, last and in the middle.
  for (const Shape& shape : std::vector<Shape>{{5, 7, 3}, {3, 37}, {2, 130}, {4, 1}}) {
    Tensor x = crayon::testing::uniform(shape, 21, -1.f, 1.f);
    for (int axis = 0; axis < int(shape.size()); ++axis) {
      CAPTURE(shape_str(shape));
      CAPTURE(axis);
      const int64_t C = shape[size_t(axis)], inner = inner_size(shape, axis);
      const int64_t runs = x.numel() / inner;  // run k belongs to channel k % C
      for (int64_t c = 0; c < C; ++c) {        // the last element of channel c's last run
        const int64_t last_run = (runs - 1 - c) / C * C + c;
        x.data()[(last_run + 1) * inner - 1] = c % 2 ? 5.f + float(c) : -5.f - float(c);
      }
      std::vector<float> mn(size_t(C), INFINITY), mx(size_t(C), -INFINITY);
      for (int64_t i = 0; i < x.numel(); ++i) {
        const size_t c = size_t(i / inner % C);
        mn[c] = std::min(mn[c], x.data()[i]);
        mx[c] = std::max(mx[c], x.data()[i]);
      }
      const Ranges r = tensor_ranges(x, axis);
      CHECK(r.min == mn);
      CHECK(r.max == mx);
    }
    for (int64_t at : {int64_t(0), x.numel() - 1, x.numel() / 2}) {
      Tensor y = x.clone();
      y.data()[at] = std::nanf("");
      CHECK_THROWS_WITH_AS(tensor_ranges(y, 0), doctest::Contains(("at flat index " + std::to_string(at)).c_str()), std::invalid_argument);
    }
  }
}

TEST_CASE("tensor_ranges: one range split over two threads gives the plain loop's extremes and finds a NaN in the second part") {
  ThreadCount two(2);
  Tensor x = Tensor::empty({4000, 37});  // above the size that splits (2 x 2^16)
  for (int64_t i = 0; i < x.numel(); ++i) x.data()[i] = std::sin(0.37f * float(i));
  x.data()[120001] = -7.5f;  // both extremes in the second thread's half
  x.data()[147999] = 9.25f;
  const Ranges r = tensor_ranges(x, -1);
  CHECK(r.min[0] == -7.5f);
  CHECK(r.max[0] == 9.25f);
  set_num_threads(1);
  const Ranges one = tensor_ranges(x, -1);
  CHECK(one.min[0] == r.min[0]);
  CHECK(one.max[0] == r.max[0]);
  set_num_threads(2);
  x.data()[140000] = std::nanf("");
  CHECK_THROWS_WITH_AS(tensor_ranges(x, -1), doctest::Contains("non-finite value nan at flat index 140000"),
                       std::invalid_argument);
}

TEST_CASE("FakeQuant stochastic: data-parallel replicas with their rows of a batch round as one process does") {
  ThreadCount one(1);
  QuantSpec spec;
  spec.bits = 4;
  spec.rounding = Rounding::stochastic;
  const int64_t G = 6, cut[3] = {0, 1, G};
  Rng rng(4);
  const Tensor x = Tensor::randn({G, 7}, rng);
  FakeQuant whole(spec, "minmax", 5, Ste::plain, 21);
  const Tensor want = whole.forward(Variable(x)).value().clone();
  std::vector<Tensor> got(2);
  std::vector<NamedTensors> buffers(2);
  test::ThreadReplicas replicas(2);
  replicas.run([&](Replicas& rep, int r) {
    FakeQuant fq(spec, "minmax", 5, Ste::plain, 21);
    ReplicaScope shard(&rep, {cut[r], cut[r + 1] - cut[r], G});
    got[size_t(r)] = fq.forward(Variable(x.slice(cut[r], cut[r + 1]).clone())).value().clone();
    for (auto& [n, t] : fq.named_buffers()) buffers[size_t(r)].emplace_back(n, t.clone());
  });
  const NamedTensors whole_buffers = whole.named_buffers();
  for (int r = 0; r < 2; ++r) {
    CHECK(bitwise_equal(got[size_t(r)], want.slice(cut[r], cut[r + 1]).clone()));
    REQUIRE(buffers[size_t(r)].size() == whole_buffers.size());
    for (size_t i = 0; i < whole_buffers.size(); ++i) {
      CAPTURE(whole_buffers[i].first);
      const Tensor &a = buffers[size_t(r)][i].second, &b = whole_buffers[i].second;  // range, grid, generator
      REQUIRE(a.dtype() == b.dtype());
      if (a.dtype() == DType::f32) CHECK(bitwise_equal(a, b));
      else CHECK(std::memcmp(a.data_as<int32_t>(), b.data_as<int32_t>(), a.nbytes()) == 0);
    }
  }
}
