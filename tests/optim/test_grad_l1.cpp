// Gradient L1 (optim/grad_l1.h): the gradient it adds, lambda * H sign(g) by a central
// difference of two backward passes, against a finite difference of the penalty
// lambda * ||g||_1 itself, on a smooth (tanh) network; weights restored bit for bit.
#include <doctest/doctest.h>

#include <cmath>
#include <stdexcept>
#include <tuple>
#include <vector>

#include "core/ops.h"
#include "optim/grad_l1.h"
#include "tests/support/tensors.h"

using namespace crayon;
using crayon::testing::bitwise_equal;

namespace {

struct Net {
  Variable w1{crayon::testing::normal({6, 5}, 1, 0.5f), true}, b1{crayon::testing::normal({6}, 2, 0.1f), true};
  Variable w2{crayon::testing::normal({3, 6}, 3, 0.5f), true};
  Tensor x = crayon::testing::normal({8, 5}, 4);
  Tensor y = Tensor::from_i32({8}, std::vector<int32_t>{0, 1, 2, 0, 1, 2, 0, 1});
  Variable loss() const { return cross_entropy(matmul(tanh(matmul(Variable(x), w1, false, true) + b1), w2, false, true), y); }
  std::vector<Variable> params() const { return {w1, b1, w2}; }
  std::vector<Variable> weights() const { return {w1, w2}; }
  void backward() {
    for (Variable p : params()) p.zero_grad();
    loss().backward();
  }
  // lambda * ||dL/dw||_1 over the weights, in double from float gradients.
  double penalty(double lambda) {
    backward();
    double s = 0;
    for (const Variable& w : weights())
      for (float g : w.grad().values()) s += std::fabs(double(g));
    return lambda * s;
  }
};

}  // namespace

TEST_CASE("gradient L1: lambda H sign(g) matches the finite difference of lambda ||g||_1 and the weights are kept") {
  Net net;
  const double lambda = 0.5;
  net.backward();
  const Tensor g_w1 = net.w1.grad().clone(), g_b1 = net.b1.grad().clone(), g_w2 = net.w2.grad().clone();
  const Tensor w1 = net.w1.value().clone(), w2 = net.w2.value().clone();
  const double p = add_gradient_l1(net.params(), net.weights(), {.lambda = lambda}, [&] { net.backward(); });
  CHECK(p == doctest::Approx(net.penalty(lambda)).epsilon(1e-6));
  net.backward();  // penalty() left its own gradients; redo add_gradient_l1 for the check below
  add_gradient_l1(net.params(), net.weights(), {.lambda = lambda}, [&] { net.backward(); });
  CHECK(bitwise_equal(net.w1.value(), w1));
  CHECK(bitwise_equal(net.w2.value(), w2));
  CHECK(bitwise_equal(net.b1.grad(), g_b1));  // not a weight: its gradient is the loss's

  // The added part against central differences of the penalty, element by element.
  // (penalty() overwrites the gradients: both are read first.)
  int checked = 0;
  const Tensor added_w1 = net.w1.grad().clone(), added_w2 = net.w2.grad().clone();
  for (auto [w, g, base, added] :
       {std::tuple{net.w1, g_w1, w1, added_w1}, std::tuple{net.w2, g_w2, w2, added_w2}}) {
    for (int64_t k = 0; k < w.numel(); ++k) {
      const float h = 1e-2f;
      Variable v = w;
      v.value().data()[k] = base.data()[k] + h;
      const double up = net.penalty(lambda);
      v.value().data()[k] = base.data()[k] - h;
      const double down = net.penalty(lambda);
      v.value().data()[k] = base.data()[k];
      const double numeric = (up - down) / (2 * double(h));
      const double analytic = double(added.data()[k]) - double(g.data()[k]);
      INFO("element ", k, ": analytic ", analytic, ", numeric ", numeric);
      CHECK(std::fabs(analytic - numeric) <= 2e-3 + 0.02 * std::fabs(numeric));
      ++checked;
    }
  }
  CHECK(checked == 30 + 18);
  CHECK_THROWS_AS(add_gradient_l1(net.params(), net.weights(), {.lambda = 0}, [] {}), std::invalid_argument);
}
