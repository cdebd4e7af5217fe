// Rounding primitives (core/rounding.h): ties, stochastic rounding's unbiasedness against
// round-to-nearest's bias, reproducibility by seed (DESIGN.md, idea 7).
#include <doctest/doctest.h>

#include <cmath>
#include <stdexcept>
#include <vector>

#include "core/rounding.h"

using namespace crayon;

TEST_CASE("rounding: nearest-even sends ties to the even neighbour and everything else to the nearest integer") {
  const std::vector<std::pair<float, float>> cases = {{0.5f, 0.f},   {1.5f, 2.f},   {2.5f, 2.f},  {3.5f, 4.f},
                                                      {-0.5f, 0.f},  {-1.5f, -2.f}, {-2.5f, -2.f}, {0.49f, 0.f},
                                                      {0.51f, 1.f},  {-2.7f, -3.f}, {7.f, 7.f},   {126.5f, 126.f},
                                                      {127.5f, 128.f}, {8388607.5f, 8388608.f}};
  for (const auto& [value, expected] : cases) {
    const float v = value, want = expected;  // plain locals: INFO captures by reference
    INFO("v = ", v);
    CHECK(round_value(v, Rounding::nearest_even) == want);
  }
}

TEST_CASE("rounding: nearest-away sends ties away from zero") {
  const std::vector<std::pair<float, float>> cases = {{0.5f, 1.f},  {1.5f, 2.f},   {2.5f, 3.f},  {-0.5f, -1.f},
                                                      {-2.5f, -3.f}, {0.49f, 0.f}, {-2.2f, -2.f}, {126.5f, 127.f}};
  for (const auto& [value, expected] : cases) {
    const float v = value, want = expected;  // plain locals: INFO captures by reference
    INFO("v = ", v);
    CHECK(round_value(v, Rounding::nearest_away) == want);
  }
}

TEST_CASE("rounding: non-finite values pass through every mode unchanged") {
  Rng rng(1);
  for (Rounding m : {Rounding::nearest_even, Rounding::nearest_away, Rounding::stochastic}) {
    CHECK(std::isnan(round_value(NAN, m, &rng)));
    CHECK(round_value(INFINITY, m, &rng) == INFINITY);
    CHECK(round_value(-INFINITY, m, &rng) == -INFINITY);
  }
}

TEST_CASE("rounding: stochastic rounding returns floor or floor + 1 and leaves integers alone") {
  Rng rng(7);
  for (int i = 0; i < 2000; ++i) {
    const float v = rng.uniform(-50.f, 50.f);
    const float r = round_value(v, Rounding::stochastic, &rng);
    CHECK((r == std::floor(v) || r == std::floor(v) + 1.f));
  }
  for (float v : {-3.f, 0.f, 5.f, 1024.f}) CHECK(round_value(v, Rounding::stochastic, &rng) == v);
}

TEST_CASE("rounding: stochastic rounding is unbiased where round-to-nearest is biased by -0.3") {
  // 1000 values x_i = i + 0.3 (fractional part f = 0.3 up to float spacing). Nearest
  // rounding sends every one down: its error is -0.3 on every value, a systematic bias. Stochastic rounding, N = 4000 seeded draws per value: each draw's error
  // has mean 0 and variance f(1 - f) = 0.21, so the mean error of each value has standard
  // error sqrt(0.21 / 4000) = 0.0072; we require |mean error| <= 5 standard errors for every
  // value (P(one fails) ~ 6e-7, for 1000 values ~ 6e-4), and the grand mean over all
  // 4,000,000 draws within 4 standard errors sqrt(0.21 / 4e6) = 0.00023 of 0.
  const int values = 1000, N = 4000;
  Rng rng(2024);
  double grand = 0, nearest_bias = 0;
  int within = 0;
  for (int i = 0; i < values; ++i) {
    const float x = float(i) + 0.3f;
    const double f = double(x) - std::floor(double(x));
    const double se = std::sqrt(f * (1 - f) / N);
    double sum = 0;
    for (int k = 0; k < N; ++k) sum += double(round_value(x, Rounding::stochastic, &rng)) - double(x);
    const double mean_err = sum / N;
    within += std::fabs(mean_err) <= 5 * se ? 1 : 0;
    grand += sum;
    nearest_bias += double(round_value(x, Rounding::nearest_even)) - double(x);
  }
  CHECK(within == values);
  CHECK(std::fabs(grand / (double(values) * N)) <= 4 * std::sqrt(0.21 / (double(values) * N)));
  CHECK(nearest_bias / values == doctest::Approx(-0.3).epsilon(1e-3));
}

TEST_CASE("rounding: for 1000 fractional parts in 0..1 the mean of 4000 stochastic draws is within 5 standard errors") {
  // x_i = (i + 0.5) / 1000; E[round(x)] = x, standard error sqrt(x(1 - x) / N).
  const int values = 1000, N = 4000;
  Rng rng(99);
  int within = 0;
  double worst = 0;
  for (int i = 0; i < values; ++i) {
    const float x = (float(i) + 0.5f) / float(values);
    double sum = 0;
    for (int k = 0; k < N; ++k) sum += round_value(x, Rounding::stochastic, &rng);
    const double se = std::sqrt(double(x) * (1 - double(x)) / N);
    const double z = std::fabs(sum / N - double(x)) / se;
    worst = std::max(worst, z);
    within += z <= 5 ? 1 : 0;
  }
  INFO("largest deviation: ", worst, " standard errors");
  CHECK(within == values);
}

TEST_CASE("rounding: the same seed gives identical stochastic draws and another seed different ones") {
  std::vector<float> in(500);
  Rng src(3);
  for (float& v : in) v = src.uniform(-4.f, 4.f);
  std::vector<float> a(in.size()), b(in.size()), c(in.size());
  Rng r1(42), r2(42), r3(43);
  round_values(in, a, Rounding::stochastic, &r1);
  round_values(in, b, Rounding::stochastic, &r2);
  round_values(in, c, Rounding::stochastic, &r3);
  CHECK(a == b);
  CHECK(a != c);
}

TEST_CASE("rounding: the bulk version equals the scalar loop and draws exactly one uniform per value") {
  std::vector<float> in = {0.25f, 3.f, -1.75f, NAN, 2.5f, -7.f, 1e9f};
  std::vector<float> out(in.size());
  Rng bulk(5), scalar(5), counter(5);
  round_values(in, out, Rounding::stochastic, &bulk);
  for (size_t i = 0; i < in.size(); ++i) {
    const float r = round_value(in[i], Rounding::stochastic, &scalar);
    CHECK((r == out[i] || (std::isnan(r) && std::isnan(out[i]))));
    counter.uniform();
  }
  CHECK(bulk.state() == counter.state());  // integers, NaN and huge values consume a draw too
  // In place works, and deterministic modes need no generator.
  std::vector<float> v = {0.5f, 1.5f, -2.5f};
  round_values(v, v, Rounding::nearest_even);
  CHECK(v == std::vector<float>{0.f, 2.f, -2.f});
}

TEST_CASE("rounding: stochastic rounding without a generator and mismatched spans are rejected") {
  CHECK_THROWS_AS(round_value(0.5f, Rounding::stochastic, nullptr), std::invalid_argument);
  std::vector<float> in(3), out(2);
  CHECK_THROWS_AS(round_values(in, out, Rounding::nearest_even), std::invalid_argument);
  CHECK_THROWS_AS(round_values(in, in, Rounding::stochastic, nullptr), std::invalid_argument);
}

TEST_CASE("rounding: mode names parse, with nearest meaning nearest-even, and unknown names are named in the error") {
  CHECK(parse_rounding("nearest") == Rounding::nearest_even);
  CHECK(parse_rounding("nearest-even") == Rounding::nearest_even);
  CHECK(parse_rounding("nearest-away") == Rounding::nearest_away);
  CHECK(parse_rounding("stochastic") == Rounding::stochastic);
  for (Rounding m : {Rounding::nearest_even, Rounding::nearest_away, Rounding::stochastic})
    CHECK(parse_rounding(rounding_name(m)) == m);
  CHECK_THROWS_WITH_AS(parse_rounding("floor"), doctest::Contains("'floor'"), std::invalid_argument);
}
