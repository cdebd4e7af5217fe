// L1 / L2 regularizers as priors: penalty, gradient and description length against their
// closed forms on hand-made weights (DESIGN.md, idea 1).
#include <doctest/doctest.h>

#include <cmath>
#include <numbers>
#include <stdexcept>
#include <vector>

#include "optim/regularizer.h"

using namespace crayon;

namespace {

// Six weights over two tensors; sum w^2 = 14.3125, sum |w| = 6.75.
std::vector<Variable> make_weights() {
  return {Variable(Tensor::from({4}, {0.5f, -1.f, 0.f, 2.f}), true),
          Variable(Tensor::from({1, 2}, {-0.25f, 3.f}), true)};
}

std::vector<float> all_values(const std::vector<Variable>& ps, bool grads) {
  std::vector<float> out;
  for (const Variable& p : ps)
    for (float v : (grads ? p.grad() : p.value()).values()) out.push_back(v);
  return out;
}

// Central differences of the penalty (in double) against add_gradient(), element by
// element; weights within 2h of a kink are skipped (L1 at 0).
void check_gradient_by_finite_differences(const Regularizer& reg) {
  std::vector<Variable> ps = make_weights();
  reg.add_gradient(ps);
  const float h = 1e-2f;
  for (size_t i = 0; i < ps.size(); ++i) {
    float* w = ps[i].value().data();
    for (int64_t k = 0; k < ps[i].numel(); ++k) {
      const float orig = w[k];
      if (std::fabs(orig) < 2 * h) continue;
      const float hi = orig + h, lo = orig - h;
      w[k] = hi;
      const double p_hi = reg.penalty(ps);
      w[k] = lo;
      const double p_lo = reg.penalty(ps);
      w[k] = orig;
      const double numeric = (p_hi - p_lo) / (double(hi) - double(lo));
      INFO("parameter ", i, " element ", k);
      CHECK(ps[i].grad().data()[k] == doctest::Approx(numeric).epsilon(1e-5));
    }
  }
}

}  // namespace

TEST_CASE("l2: the penalty is lambda times the sum of squares") {
  const L2Regularizer l2(0.1);
  CHECK(l2.penalty(make_weights()) == doctest::Approx(0.1 * 14.3125).epsilon(1e-12));
  CHECK(l2.sigma() == doctest::Approx(std::sqrt(5.0)).epsilon(1e-12));  // sigma^2 = 1/(2 lambda)
}

TEST_CASE("l2: the gradient 2 lambda w is added to an existing gradient or creates one") {
  const L2Regularizer l2(0.1);
  std::vector<Variable> ps = make_weights();
  ps[0].add_grad(Tensor::full({4}, 1.f));  // parameter 1 has no gradient yet
  l2.add_gradient(ps);
  const std::vector<float> g = all_values(ps, true);
  const std::vector<float> expected = {1.1f, 0.8f, 1.f, 1.4f, -0.05f, 0.6f};
  for (size_t k = 0; k < g.size(); ++k) CHECK(g[k] == doctest::Approx(expected[k]).epsilon(1e-6));
}

TEST_CASE("l2: the gradient matches finite differences of the penalty") {
  check_gradient_by_finite_differences(L2Regularizer(0.1));
}

TEST_CASE("l2: model bits are the code length of the weights under the Gaussian prior") {
  // sigma^2 = 1 / (2 * 0.1) = 5, delta = 2^-8, N = 6:
  // bits = sum w^2 / (2 * 5 * ln 2) + 6 * 1/2 log2(2 pi 5) + 6 * 8
  const L2Regularizer l2(0.1);
  const std::vector<Variable> ps = make_weights();
  const double closed = 14.3125 / (10 * std::numbers::ln2) + 3 * std::log2(10 * std::numbers::pi) + 48;
  CHECK(l2.model_bits(ps) == doctest::Approx(closed).epsilon(1e-12));
  // The same, straight from the density: sum -log2(N(w; 0, 5) * delta).
  double direct = 0;
  for (float w : all_values(ps, false))
    direct -= std::log2(std::exp(-double(w) * w / 10) / std::sqrt(10 * std::numbers::pi) / 256);
  CHECK(l2.model_bits(ps) == doctest::Approx(direct).epsilon(1e-12));
  // A coarser precision costs log2(2) = 1 bit less per weight.
  CHECK(L2Regularizer(0.1, 1.0 / 128).model_bits(ps) == doctest::Approx(closed - 6).epsilon(1e-12));
}

TEST_CASE("l2: the penalty is the negative log of the Gaussian prior up to a constant") {
  const L2Regularizer l2(0.1);
  std::vector<Variable> a = make_weights(), b = make_weights();
  b[0].value().data()[1] = 7.f;
  b[1].value().data()[0] = -0.125f;
  // -log_prior - penalty = N * 1/2 ln(2 pi sigma^2), whatever the weights.
  const double c = 6 * 0.5 * std::log(10 * std::numbers::pi);
  CHECK(-l2.log_prior(a) - l2.penalty(a) == doctest::Approx(c).epsilon(1e-12));
  CHECK(-l2.log_prior(b) - l2.penalty(b) == doctest::Approx(c).epsilon(1e-12));
}

TEST_CASE("l1: the penalty is lambda times the sum of absolute values") {
  const L1Regularizer l1(0.1);
  CHECK(l1.penalty(make_weights()) == doctest::Approx(0.675).epsilon(1e-12));
  CHECK(l1.scale() == doctest::Approx(10.0).epsilon(1e-12));  // b = 1 / lambda
}

TEST_CASE("l1: the gradient is lambda sign(w), and 0 at w = 0") {
  const L1Regularizer l1(0.1);
  std::vector<Variable> ps = make_weights();
  l1.add_gradient(ps);
  const std::vector<float> g = all_values(ps, true);
  const std::vector<float> expected = {0.1f, -0.1f, 0.f, 0.1f, -0.1f, 0.1f};
  for (size_t k = 0; k < g.size(); ++k) CHECK(g[k] == expected[k]);
  CHECK(g[2] == 0.f);
}

TEST_CASE("l1: the gradient matches finite differences of the penalty away from 0") {
  check_gradient_by_finite_differences(L1Regularizer(0.1));
}

TEST_CASE("l1: model bits are the code length of the weights under the Laplace prior") {
  // b = 10, delta = 2^-8, N = 6: bits = sum |w| / (10 ln 2) + 6 log2(20) + 6 * 8
  const L1Regularizer l1(0.1);
  const std::vector<Variable> ps = make_weights();
  const double closed = 6.75 / (10 * std::numbers::ln2) + 6 * std::log2(20.0) + 48;
  CHECK(l1.model_bits(ps) == doctest::Approx(closed).epsilon(1e-12));
  double direct = 0;  // sum -log2(Laplace(w; 0, 10) * delta)
  for (float w : all_values(ps, false))
    direct -= std::log2(std::exp(-std::fabs(double(w)) / 10) / 20 / 256);
  CHECK(l1.model_bits(ps) == doctest::Approx(direct).epsilon(1e-12));
  CHECK(-l1.log_prior(ps) - l1.penalty(ps) == doctest::Approx(6 * std::log(20.0)).epsilon(1e-12));
}

TEST_CASE("regularizers: a lambda or precision that is not positive is refused") {
  CHECK_THROWS_WITH_AS(L2Regularizer(0.0), doctest::Contains("L2Regularizer: lambda"),
                       std::invalid_argument);
  CHECK_THROWS_AS(L1Regularizer(-1.0), std::invalid_argument);
  CHECK_THROWS_AS(L1Regularizer(NAN), std::invalid_argument);
  CHECK_THROWS_WITH_AS(L2Regularizer(0.1, 0.0), doctest::Contains("precision"),
                       std::invalid_argument);
}

TEST_CASE("data bits: n samples at a mean cross-entropy of ln 2 nats cost n bits") {
  CHECK(data_bits(std::numbers::ln2, 100) == doctest::Approx(100.0).epsilon(1e-12));
  CHECK(data_bits(0.5, 10) == doctest::Approx(5.0 / std::numbers::ln2).epsilon(1e-12));
  CHECK(data_bits(1.0, 0) == 0.0);
  CHECK_THROWS_AS(data_bits(1.0, -1), std::invalid_argument);
  CHECK_THROWS_AS(data_bits(-0.1, 10), std::invalid_argument);
  CHECK_THROWS_AS(data_bits(NAN, 10), std::invalid_argument);
}
