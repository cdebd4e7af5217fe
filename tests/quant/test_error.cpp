// Saturation and rounding errors measured separately (DESIGN.md, idea 2), and the clip-ratio
// sweep that trades one for the other.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

#include "quant/error.h"
#include "quant/fake_quant.h"
#include "tests/support/tensors.h"

using namespace crayon;

namespace {
QuantSpec make_spec(int bits, bool symmetric, int axis = -1, Rounding r = Rounding::nearest_even) {
  QuantSpec s;
  s.bits = bits;
  s.symmetric = symmetric;
  s.axis = axis;
  s.rounding = r;
  return s;
}

Tensor laplace(int64_t n, uint64_t seed) {
  Rng rng(seed);
  Tensor t = Tensor::empty({n});
  for (float& v : t.values()) {
    const double u = double(rng.uniform()) - 0.5;
    v = float(-(u < 0 ? -1 : 1) * std::log(1 - 2 * std::fabs(u)));
  }
  return t;
}
}  // namespace

TEST_CASE("decompose_error: a hand-made tensor splits into its saturation and rounding parts") {
  // int8 symmetric, scale 0.1: the grid covers [-12.8, 12.7].
  //   0.04 -> 0 (rounding 0.04), 0.06 -> 0.1 (rounding 0.04), 0 exact,
  //   13 -> 12.7 (saturation 0.3), -20 -> -12.8 (saturation 7.2), 12.74 -> 12.7 (saturation 0.04).
  const Tensor x = Tensor::from({6}, {0.04f, 0.06f, 13.f, -20.f, 12.74f, 0.f});
  const QuantError e = decompose_error(x, QParams{{0.1f}, {0}, -1}, make_spec(8, true));
  CHECK(e.count == 6);
  CHECK(e.saturated == 3);
  CHECK(e.saturation_sse == doctest::Approx(0.09 + 51.84 + 0.0016).epsilon(1e-5));
  CHECK(e.rounding_sse == doctest::Approx(0.0016 + 0.0016).epsilon(1e-4));
  CHECK(e.max_saturation_error == doctest::Approx(7.2).epsilon(1e-5));
  CHECK(e.max_rounding_error == doctest::Approx(0.04).epsilon(1e-4));
  CHECK(e.mse() == doctest::Approx((51.9316 + 0.0032) / 6).epsilon(1e-5));
}

TEST_CASE("decompose_error: the two parts add up to the total squared error and rounding stays within scale / 2") {
  const Tensor w = crayon::testing::normal({4, 50}, 8, 2.f);
  for (Rounding r : {Rounding::nearest_even, Rounding::nearest_away, Rounding::stochastic}) {
    const QuantSpec spec = make_spec(4, false, 0, r);
    const QParams qp = choose_qparams(std::vector<float>{-1.f, -2.f, -0.5f, -3.f},
                                      std::vector<float>{1.f, 0.5f, 2.f, 3.f}, spec);
    Rng r1(4), r2(4);
    const QuantError e = decompose_error(w, qp, spec, &r1);
    const Tensor y = fake_quant_values(w, qp, spec, &r2);
    double sse = 0;
    for (int64_t i = 0; i < w.numel(); ++i) sse += std::pow(double(w.data()[i]) - y.data()[i], 2);
    INFO(std::string(rounding_name(r)), ": ", e.saturated, " saturated of ", e.count);
    CHECK(e.saturated > 0);
    CHECK(e.total_sse() == doctest::Approx(sse).epsilon(1e-9));
    const float smax = *std::max_element(qp.scale.begin(), qp.scale.end());
    // Per channel the bound is that channel's scale / 2; the largest scale bounds them all.
    if (r == Rounding::stochastic) CHECK(e.max_rounding_error < smax);
    else CHECK(e.max_rounding_error <= 0.5 * smax * (1 + 1e-4));  // up to float rounding
  }
}

TEST_CASE("clip_sweep: smaller ratios trade saturation for finer rounding, and the best is inside (0, 1)") {
  const Tensor x = laplace(20000, 5);
  const QuantSpec spec = make_spec(4, true);
  std::vector<float> ratios;
  for (int k = 1; k <= 20; ++k) ratios.push_back(float(k) / 20.f);
  const std::vector<ClipPoint> sweep = clip_sweep(x, spec, ratios);
  REQUIRE(sweep.size() == ratios.size());
  const float top = sweep.back().qparams.scale[0] * 7.f;  // ratio 1: min-max, scale = max|x| / 7
  CHECK(sweep.back().error.max_saturation_error <= 1e-6 * top);
  size_t best = 0;
  for (size_t k = 0; k < sweep.size(); ++k) {
    INFO("ratio ", sweep[k].ratio);
    const float s = sweep[k].qparams.scale[0];
    CHECK(s == doctest::Approx(sweep[k].ratio * top / 7.f).epsilon(1e-5));
    CHECK(sweep[k].error.max_rounding_error <= 0.5 * s * (1 + 1e-4));
    if (k > 0) CHECK(sweep[k].error.saturation_sse <= sweep[k - 1].error.saturation_sse * (1 + 1e-9) + 1e-12);
    if (sweep[k].error.total_sse() < sweep[best].error.total_sse()) best = k;
  }
  CHECK(best > 0);
  CHECK(best < sweep.size() - 1);
  CHECK(sweep[0].error.rounding_sse < sweep.back().error.rounding_sse);
}

TEST_CASE("clip_sweep: works per channel and rejects ratios outside 0 < r <= 1 and stochastic rounding") {
  const Tensor w = crayon::testing::normal({3, 40}, 9);
  const std::vector<ClipPoint> sweep = clip_sweep(w, make_spec(8, true, 0), {0.5f, 1.f});
  CHECK(sweep[1].qparams.channels() == 3);
  CHECK(sweep[0].qparams.scale[2] == doctest::Approx(0.5 * sweep[1].qparams.scale[2]).epsilon(1e-6));
  CHECK_THROWS_AS(clip_sweep(w, make_spec(8, true), {0.f}), std::invalid_argument);
  CHECK_THROWS_AS(clip_sweep(w, make_spec(8, true), {1.5f}), std::invalid_argument);
  CHECK_THROWS_AS(clip_sweep(w, make_spec(8, true, -1, Rounding::stochastic), {1.f}), std::invalid_argument);
}
