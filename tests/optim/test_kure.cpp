// KURE (optim/kure.h): the kurtosis against its closed form and known distributions, and
// the penalty's gradient against finite differences (tests/support/gradcheck.h).
#include <doctest/doctest.h>

#include <cmath>
#include <stdexcept>
#include <vector>

#include "core/rng.h"
#include "optim/kure.h"
#include "tests/support/gradcheck.h"
#include "tests/support/tensors.h"

using namespace crayon;
using crayon::testing::check_gradients;

namespace {

// mean((w - mu)^4) / mean((w - mu)^2)^2 in double.
double kurtosis_of(const Tensor& t) {
  double mu = 0, m2 = 0, m4 = 0;
  for (float v : t.values()) mu += v;
  mu /= double(t.numel());
  for (float v : t.values()) {
    const double d = double(v) - mu;
    m2 += d * d, m4 += d * d * d * d;
  }
  m2 /= double(t.numel()), m4 /= double(t.numel());
  return m4 / (m2 * m2);
}

}  // namespace

TEST_CASE("kure: kurtosis is 1 for two values, ~1.8 for uniform, ~3 for Gaussian, and matches its closed form") {
  CHECK(kurtosis(Variable(Tensor::from({4}, {-2.f, 2.f, -2.f, 2.f}))).item() == doctest::Approx(1.0).epsilon(1e-6));
  Rng rng(1);
  CHECK(kurtosis(Variable(Tensor::uniform({200000}, rng, -1.f, 1.f))).item() == doctest::Approx(1.8).epsilon(0.01));
  CHECK(kurtosis(Variable(Tensor::randn({200000}, rng))).item() == doctest::Approx(3.0).epsilon(0.02));
  const Tensor w = crayon::testing::normal({6, 5}, 2);
  CHECK(kurtosis(Variable(w)).item() == doctest::Approx(kurtosis_of(w)).epsilon(1e-5));
  // Invariant to shift and scale.
  Tensor moved = w.clone();
  for (float& v : moved.values()) v = 3.f * v - 0.5f;
  CHECK(kurtosis(Variable(moved)).item() == doctest::Approx(kurtosis_of(w)).epsilon(1e-4));
  CHECK_THROWS_AS(kurtosis(Variable(Tensor::from({1}, {1.f}))), std::invalid_argument);
}

TEST_CASE("kure: the penalty is lambda times the mean squared distance to 1.8 and its gradient checks") {
  const Tensor a = crayon::testing::normal({4, 3}, 3), b = crayon::testing::uniform({2, 2, 3}, 4);
  const double want = 0.5 * (std::pow(kurtosis_of(a) - 1.8, 2) + std::pow(kurtosis_of(b) - 1.8, 2)) * 0.25;
  CHECK(kure_penalty({Variable(a), Variable(b)}, 0.25f).item() == doctest::Approx(want).epsilon(1e-5));
  check_gradients([](const std::vector<Variable>& v) { return kure_penalty(v, 0.25f); }, {a, b},
                  {.name = "kure_penalty"});
  check_gradients([](const std::vector<Variable>& v) { return kurtosis(v[0]); }, {a},
                  {.name = "kurtosis"});
  CHECK_THROWS_AS(kure_penalty({}, 1.f), std::invalid_argument);
  CHECK_THROWS_AS(kure_penalty({Variable(a)}, 0.f), std::invalid_argument);
}
