// Every differentiable op in core against central differences (tests/support/gradcheck.h),
// on odd shapes, with the kinks' subgradients checked separately as exact values.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdlib>
#include <string>
#include <vector>

#include "core/check.h"
#include "core/ops.h"
#include "core/parallel.h"
#include "tests/support/gradcheck.h"
#include "tests/support/threads.h"
#include "tests/support/tensors.h"

using namespace crayon;
using namespace crayon::testing;

namespace {

using Vars = std::vector<Variable>;

GradCheckOptions named(const std::string& name) {
  GradCheckOptions o;
  o.name = name;
  return o;
}

// The gradient of sum(fn(x)) at x, i.e. fn's backward with a seed of ones.
Tensor grad_of(Variable (*fn)(const Variable&), const Tensor& x) {
  Variable v(x.clone(), true);
  Variable y = fn(v);
  y.backward(Tensor::ones(y.shape()));
  return v.grad();
}

// ---------------------------------------------------------------- the checker's own tests

// y = x^2 with a backward of factor * x * dy: factor 2 is right, anything else is wrong.
Variable square_with_derivative(const Variable& x, float factor) {
  Tensor y = x.value().clone();
  for (float& v : y.values()) v = v * v;
  return make_result(std::move(y), {x}, [factor](const Tensor& dy, std::vector<Variable>& in) {
    Tensor g = in[0].value().clone();
    for (int64_t i = 0; i < g.numel(); ++i) g.data()[i] *= factor * dy.data()[i];
    in[0].add_grad(g);
  }, "square_test");
}

// Softmax whose backward keeps only the Jacobian's diagonal y_i (1 - y_i), dropping the
// -y_i y_j cross terms: a "missing term" bug.
Variable softmax_diagonal_only(const Variable& x) {
  Tensor y = softmax(x.detach()).value();
  Tensor yv = y;
  return make_result(std::move(y), {x}, [yv](const Tensor& dy, std::vector<Variable>& in) {
    Tensor g = dy.clone();
    for (int64_t i = 0; i < g.numel(); ++i) g.data()[i] *= yv.data()[i] * (1.f - yv.data()[i]);
    in[0].add_grad(g);
  }, "softmax_test");
}

// y = x^2 whose backward overwrites the gradient buffer instead of accumulating into it.
Variable square_overwriting(const Variable& x) {
  Tensor y = x.value().clone();
  for (float& v : y.values()) v = v * v;
  return make_result(std::move(y), {x}, [](const Tensor& dy, std::vector<Variable>& in) {
    float beta;  // ignored on purpose
    Tensor& g = in[0].grad_accumulator(&beta);
    for (int64_t i = 0; i < g.numel(); ++i) g.data()[i] = 2.f * in[0].value().data()[i] * dy.data()[i];
  }, "square_test");
}

// op's own forward, with op's own backward (run on a fresh graph of fresh leaves) scaled
// by factors[i] for input i: a backward that is right except for a relative error of
// factors[i] - 1 in the gradient of input i.
Variable with_scaled_backward(const GradFn& op, const Vars& in, const std::vector<float>& factors) {
  Tensor y;
  {
    NoGradGuard no_grad;
    Vars constants;
    for (const Variable& v : in) constants.push_back(v.detach());
    y = op(constants).value().clone();
  }
  return make_result(std::move(y), in, [op, factors](const Tensor& dy, std::vector<Variable>& inputs) {
    Vars leaves;
    for (const Variable& v : inputs) leaves.emplace_back(v.value().clone(), v.requires_grad());
    op(leaves).backward(dy);
    for (size_t i = 0; i < inputs.size(); ++i) {
      if (!inputs[i].requires_grad() || !leaves[i].has_grad()) continue;
      Tensor g = leaves[i].grad().clone();
      for (float& v : g.values()) v *= factors[i];
      inputs[i].add_grad(g);
    }
  }, "scaled_backward_test");
}

// Ops of every kind, at inputs like those of their own checks below: a product, smooth
// elementwise nonlinearities, softmax-like ops and reductions, and the noisiest checks
// (conv2d and batch_norm, whose outputs are long float32 sums).
struct ScaledCase {
  std::string name;
  GradFn op;
  std::vector<Tensor> inputs;
  bool elementwise = false;  // a diagonal Jacobian with no entry near 0
};

std::vector<ScaledCase> scaled_cases() {
  std::vector<ScaledCase> cases;
  cases.push_back({"matmul", [](const Vars& v) { return matmul(v[0], v[1]); },
                   {uniform({3, 5}, 1000), uniform({5, 4}, 1001)}});
  cases.push_back({"tanh", [](const Vars& v) { return tanh(v[0]); }, {uniform({3, 4}, 1002, -2.f, 2.f)}, true});
  cases.push_back({"exp", [](const Vars& v) { return exp(v[0]); }, {uniform({3, 4}, 1003, -2.f, 2.f)}, true});
  cases.push_back({"softmax", [](const Vars& v) { return softmax(v[0]); }, {normal({2, 3, 4}, 1004, 2.f)}});
  cases.push_back({"log_softmax axis 1", [](const Vars& v) { return log_softmax(v[0], 1); },
                   {normal({2, 3, 4}, 1005, 2.f)}});
  cases.push_back({"sum of squares", [](const Vars& v) { return sum(mul(v[0], v[0]), 1); },
                   {uniform({3, 5}, 1006)}});
  const Tensor labels = Tensor::from_i32({4}, std::vector<int32_t>{0, 4, 2, 4});
  cases.push_back({"cross_entropy", [labels](const Vars& v) { return cross_entropy(v[0], labels); },
                   {normal({4, 5}, 1007, 2.f)}});
  cases.push_back({"conv2d", [](const Vars& v) { return conv2d(v[0], v[1], v[2], {1, 1, 1, 1}); },
                   {uniform({2, 3, 5, 5}, 1008), uniform({4, 3, 3, 3}, 1009), uniform({4}, 1010)}});
  Tensor running_mean = Tensor::zeros({3}), running_var = Tensor::ones({3});
  cases.push_back({"batch_norm training",
                   [=](const Vars& v) mutable {
                     return batch_norm(v[0], v[1], v[2], running_mean, running_var, true);
                   },
                   {normal({2, 3, 3, 2}, 1011), uniform({3}, 1012, 0.5f, 1.5f), uniform({3}, 1013)}});
  return cases;
}

}  // namespace

TEST_CASE("gradcheck: accepts a correct backward") {
  const Tensor x = away_from_zero({2, 3}, 1);
  CHECK(compare_gradients([](const Vars& v) { return square_with_derivative(v[0], 2.f); }, {x}).ok());
  CHECK(compare_gradients([](const Vars& v) { return softmax(v[0]); }, {x}).ok());
  CHECK(compare_gradients([](const Vars& v) { return add(square_with_derivative(v[0], 2.f),
                                                         square_with_derivative(v[0], 2.f)); }, {x}).ok());
}

TEST_CASE("gradcheck: fails on a backward that is off by a factor of 2 or by 5 percent") {
  const Tensor x = away_from_zero({2, 3}, 2);
  for (float factor : {1.f, 4.f, -2.f, 2.1f}) {
    CAPTURE(factor);
    const GradCheckResult r =
        compare_gradients([factor](const Vars& v) { return square_with_derivative(v[0], factor); }, {x});
    CHECK_FALSE(r.ok());
    CHECK(r.mismatches[0] == 6);  // every diagonal entry of the 6x6 Jacobian is wrong
  }
}

TEST_CASE("gradcheck: fails on a backward that is off by 1 percent or by 0.1 percent") {
  const Tensor x = away_from_zero({2, 3}, 2);
  for (float factor : {2.02f, 1.98f, 2.002f, 1.998f}) {
    CAPTURE(factor);
    const GradCheckResult r =
        compare_gradients([factor](const Vars& v) { return square_with_derivative(v[0], factor); }, {x});
    CHECK_FALSE(r.ok());
    CHECK(r.mismatches[0] == 6);
  }
}

TEST_CASE("gradcheck: accepts every op of the scaled-backward self-tests with its backward unscaled") {
  for (const ScaledCase& c : scaled_cases()) {
    CAPTURE(c.name);
    const std::vector<float> ones(c.inputs.size(), 1.f);
    const GradCheckResult r = compare_gradients(
        [&](const Vars& v) { return with_scaled_backward(c.op, v, ones); }, c.inputs);
    CHECK(r.ok());
    CHECK(compare_gradients(c.op, c.inputs).ok());
  }
}

TEST_CASE("gradcheck: fails on a backward scaled by 1.01, 0.99, 1.001 or 0.999 in any op, for any one input") {
  for (const ScaledCase& c : scaled_cases())
    for (size_t wrong = 0; wrong < c.inputs.size(); ++wrong) {
      CAPTURE(c.name);
      CAPTURE(wrong);
      std::vector<int64_t> flagged;  // entries of the wrong input flagged, per factor
      for (float factor : {1.01f, 0.99f, 1.001f, 0.999f}) {
        CAPTURE(factor);
        std::vector<float> factors(c.inputs.size(), 1.f);
        factors[wrong] = factor;
        const GradCheckResult r = compare_gradients(
            [&](const Vars& v) { return with_scaled_backward(c.op, v, factors); }, c.inputs);
        CHECK_FALSE(r.ok());
        for (size_t i = 0; i < c.inputs.size(); ++i)
          if (i != wrong) CHECK(r.mismatches[i] == 0);  // only the wrong gradient is flagged
        CHECK(r.mismatches[wrong] > 0);
        // An elementwise op's Jacobian is its diagonal, with no entry near 0: all are caught.
        if (c.elementwise) CHECK(r.mismatches[wrong] == c.inputs[wrong].numel());
        flagged.push_back(r.mismatches[wrong]);
      }
      // A 1 % error is caught on (nearly) every nonzero entry; a 0.1 % error misses only
      // the entries below ~atol / 8e-4 in size, so it still catches most of them.
      CHECK(3 * flagged[2] >= 2 * flagged[0]);
      CHECK(3 * flagged[3] >= 2 * flagged[1]);
    }
}

TEST_CASE("gradcheck: fails on a backward that drops the Jacobian's off-diagonal terms") {
  const GradCheckResult r =
      compare_gradients([](const Vars& v) { return softmax_diagonal_only(v[0]); }, {normal({2, 4}, 3)});
  CHECK_FALSE(r.ok());
  CHECK(r.mismatches[0] > 0);
}

TEST_CASE("gradcheck: fails on a backward that overwrites instead of accumulating") {
  const GradCheckResult r = compare_gradients(
      [](const Vars& v) { return add(square_overwriting(v[0]), square_overwriting(v[0])); },
      {away_from_zero({5}, 4)});
  CHECK_FALSE(r.ok());
}

// ---------------------------------------------------------------- binary ops, broadcasting

namespace {
using BinaryOp = Variable (*)(const Variable&, const Variable&);

struct BroadcastCase {
  Shape a, b;
};
const std::vector<BroadcastCase> kBroadcastCases = {
    {{2, 3}, {2, 3}},          // same shape
    {{2, 3}, {}},              // scalar of shape ()
    {{}, {2, 3}},
    {{2, 3}, {1}},             // scalar of shape (1,)
    {{1}, {2, 3}},
    {{}, {1}},
    {{3, 4}, {4}},             // row bias: (B, C) + (C,)
    {{4}, {3, 4}},
    {{2, 3, 2, 2}, {3, 1, 1}}, // channel bias: (B, C, H, W) + (C, 1, 1)
    {{3, 1, 1}, {2, 3, 2, 2}},
    {{3, 1}, {1, 4}},          // both sides broadcast
    {{1, 4}, {3, 1}},
    {{2, 1, 3}, {4, 1}},       // both sides, different ranks
};

// b_lo..b_hi bounds the second operand (kept away from 0 for div).
void check_binary(const char* name, BinaryOp op, float b_lo = -1.f, float b_hi = 1.f) {
  uint64_t seed = 100;
  for (const BroadcastCase& c : kBroadcastCases) {
    const Tensor a = uniform(c.a, seed++), b = uniform(c.b, seed++, b_lo, b_hi);
    check_gradients([op](const Vars& v) { return op(v[0], v[1]); }, {a, b},
                    named(str(name, " ", shape_str(c.a), " with ", shape_str(c.b))));
  }
}
}  // namespace

TEST_CASE("add: gradient matches finite differences for both operands under every broadcast pattern") {
  check_binary("add", add);
}
TEST_CASE("sub: gradient matches finite differences for both operands under every broadcast pattern") {
  check_binary("sub", sub);
}
TEST_CASE("mul: gradient matches finite differences for both operands under every broadcast pattern") {
  check_binary("mul", mul);
}
TEST_CASE("div: gradient matches finite differences for both operands under every broadcast pattern") {
  check_binary("div", div, 0.5f, 1.5f);
}

TEST_CASE("binary ops: an operand used on both sides gets the sum of both gradients") {
  const Tensor x = uniform({2, 3}, 7, 0.5f, 1.5f);
  check_gradients([](const Vars& v) { return mul(v[0], v[0]); }, {x}, named("x * x"));
  check_gradients([](const Vars& v) { return div(v[0], v[0]); }, {x}, named("x / x"));
  check_gradients([](const Vars& v) { return sub(v[0], v[0]); }, {x}, named("x - x"));
}

TEST_CASE("add and mul with a float scalar: gradient matches finite differences") {
  const Tensor x = uniform({3, 5}, 8);
  check_gradients([](const Vars& v) { return add(v[0], 2.5f); }, {x}, named("add scalar"));
  check_gradients([](const Vars& v) { return mul(v[0], -1.5f); }, {x}, named("mul scalar"));
  check_gradients([](const Vars& v) { return 3.f * v[0] - 2.f; }, {x}, named("3x - 2"));
  check_gradients([](const Vars& v) { return v[0] / 4.f; }, {x}, named("x / 4"));
}

TEST_CASE("binary ops: broadcast forward values follow NumPy alignment") {
  const Variable a(Tensor::from({3, 1}, {1, 2, 3})), b(Tensor::from({1, 4}, {10, 20, 30, 40}));
  const Tensor y = add(a, b).value();
  REQUIRE(y.shape() == Shape{3, 4});
  CHECK(y.at({2, 3}) == 43.f);
  CHECK(y.at({0, 1}) == 21.f);
  const Variable x(Tensor::arange(12).reshape({1, 3, 2, 2})), c(Tensor::from({3, 1, 1}, {0, 100, 200}));
  const Tensor z = add(x, c).value();
  CHECK(z.at({0, 1, 1, 0}) == 106.f);
  CHECK(div(x, Variable(Tensor::scalar(2.f))).value().at({0, 2, 1, 1}) == 5.5f);
}

// ---------------------------------------------------------------- unary ops

TEST_CASE("neg, exp, sigmoid and tanh: gradient matches finite differences") {
  const Tensor x = uniform({3, 4}, 10, -2.f, 2.f);
  check_gradients([](const Vars& v) { return neg(v[0]); }, {x}, named("neg"));
  check_gradients([](const Vars& v) { return exp(v[0]); }, {x}, named("exp"));
  check_gradients([](const Vars& v) { return sigmoid(v[0]); }, {normal({3, 4}, 11, 3.f)}, named("sigmoid"));
  check_gradients([](const Vars& v) { return tanh(v[0]); }, {x}, named("tanh"));
}

TEST_CASE("log and sqrt: gradient matches finite differences on positive inputs") {
  const Tensor x = uniform({2, 5}, 12, 0.5f, 3.f);
  check_gradients([](const Vars& v) { return log(v[0]); }, {x}, named("log"));
  check_gradients([](const Vars& v) { return sqrt(v[0]); }, {x}, named("sqrt"));
}

TEST_CASE("pow: gradient matches finite differences for several exponents") {
  const Tensor pos = uniform({2, 3}, 13, 0.5f, 2.f);
  for (float p : {0.f, 0.5f, 1.f, 1.7f, -1.f, -2.5f})
    check_gradients([p](const Vars& v) { return pow(v[0], p); }, {pos}, named(str("pow ", p)));
  // Integer exponents are defined for negative bases too.
  const Tensor any = away_from_zero({2, 3}, 14, 0.3f, 1.5f);
  for (float p : {2.f, 3.f, -2.f})
    check_gradients([p](const Vars& v) { return pow(v[0], p); }, {any}, named(str("pow ", p, " signed")));
}

TEST_CASE("abs and relu: gradient matches finite differences away from 0") {
  const Tensor x = away_from_zero({3, 4}, 15);
  check_gradients([](const Vars& v) { return abs(v[0]); }, {x}, named("abs"));
  check_gradients([](const Vars& v) { return relu(v[0]); }, {x}, named("relu"));
}

TEST_CASE("relu6: gradient matches finite differences away from 0 and 6") {
  const Tensor x = Tensor::from({2, 4}, {-1.f, -0.3f, 0.2f, 1.5f, 3.f, 5.5f, 6.4f, 8.f});
  check_gradients([](const Vars& v) { return relu6(v[0]); }, {x}, named("relu6"));
}

TEST_CASE("clamp: gradient matches finite differences away from the bounds") {
  const Tensor x = Tensor::from({2, 4}, {-1.2f, -0.7f, -0.4f, 0.f, 0.3f, 0.6f, 0.8f, 1.4f});
  check_gradients([](const Vars& v) { return clamp(v[0], -0.5f, 0.7f); }, {x}, named("clamp"));
}

TEST_CASE("relu, relu6, clamp and abs: subgradients at the kinks follow the documented conventions") {
  // relu'(0) = 0
  CHECK(grad_of(relu, Tensor::from({3}, {0.f, 1.f, -1.f})).values()[0] == 0.f);
  // relu6' is 1 on the open interval (0, 6) only
  const Tensor g6 = grad_of(relu6, Tensor::from({5}, {0.f, 6.f, 3.f, -1.f, 7.f}));
  CHECK(std::vector<float>(g6.values().begin(), g6.values().end()) == std::vector<float>{0, 0, 1, 0, 0});
  // clamp' is 1 on [lo, hi], bounds included
  Variable c(Tensor::from({5}, {-0.5f, 0.7f, 0.f, -1.f, 1.f}), true);
  clamp(c, -0.5f, 0.7f).backward(Tensor::ones({5}));
  CHECK(std::vector<float>(c.grad().values().begin(), c.grad().values().end()) ==
        std::vector<float>{1, 1, 1, 0, 0});
  // abs'(0) = 0
  const Tensor ga = grad_of(abs, Tensor::from({3}, {0.f, 2.f, -2.f}));
  CHECK(std::vector<float>(ga.values().begin(), ga.values().end()) == std::vector<float>{0, 1, -1});
}

// ---------------------------------------------------------------- matmul

TEST_CASE("matmul: gradient matches finite differences for all four transpose combinations") {
  struct Mkn { int64_t m, k, n; };
  uint64_t seed = 200;
  for (const Mkn s : {Mkn{1, 7, 3}, Mkn{3, 5, 1}, Mkn{3, 5, 4}, Mkn{2, 1, 6}})
    for (bool ta : {false, true})
      for (bool tb : {false, true}) {
        const Tensor a = uniform(ta ? Shape{s.k, s.m} : Shape{s.m, s.k}, seed++);
        const Tensor b = uniform(tb ? Shape{s.n, s.k} : Shape{s.k, s.n}, seed++);
        check_gradients([ta, tb](const Vars& v) { return matmul(v[0], v[1], ta, tb); }, {a, b},
                        named(str("matmul ", shape_str(a.shape()), ta ? "^T" : "", " x ",
                                  shape_str(b.shape()), tb ? "^T" : "")));
      }
}

TEST_CASE("matmul: one Variable on both sides (x^T x, x x^T) accumulates both gradients") {
  const Tensor x = uniform({3, 5}, 210);
  check_gradients([](const Vars& v) { return matmul(v[0], v[0], true, false); }, {x}, named("x^T x"));
  check_gradients([](const Vars& v) { return matmul(v[0], v[0], false, true); }, {x}, named("x x^T"));
}

// ---------------------------------------------------------------- reductions

TEST_CASE("sum and mean: gradient matches finite differences over all elements and over each axis") {
  const Tensor x = uniform({2, 3, 4}, 300);
  check_gradients([](const Vars& v) { return sum(v[0]); }, {x}, named("sum all"));
  check_gradients([](const Vars& v) { return mean(v[0]); }, {x}, named("mean all"));
  for (int axis : {0, 1, 2, -1, -3})
    for (bool keepdim : {false, true}) {
      check_gradients([=](const Vars& v) { return sum(v[0], axis, keepdim); }, {x},
                      named(str("sum axis ", axis, " keepdim ", keepdim)));
      check_gradients([=](const Vars& v) { return mean(v[0], axis, keepdim); }, {x},
                      named(str("mean axis ", axis, " keepdim ", keepdim)));
    }
}

TEST_CASE("max: gradient matches finite differences over all elements and over each axis") {
  const Tensor x = distinct({2, 3, 4}, 301);  // distinct values, 0.1 apart
  check_gradients([](const Vars& v) { return max(v[0]); }, {x}, named("max all"));
  for (int axis : {0, 1, 2, -1})
    for (bool keepdim : {false, true})
      check_gradients([=](const Vars& v) { return max(v[0], axis, keepdim); }, {x},
                      named(str("max axis ", axis, " keepdim ", keepdim)));
}

TEST_CASE("max: ties send the whole gradient to the first maximal element") {
  Variable x(Tensor::from({4}, {1.f, 3.f, 3.f, 2.f}), true);
  max(x).backward();
  CHECK(std::vector<float>(x.grad().values().begin(), x.grad().values().end()) ==
        std::vector<float>{0, 1, 0, 0});
  Variable y(Tensor::from({2, 3}, {5.f, 5.f, 1.f, 0.f, 2.f, 2.f}), true);
  max(y, 1).backward(Tensor::ones({2}));
  CHECK(std::vector<float>(y.grad().values().begin(), y.grad().values().end()) ==
        std::vector<float>{1, 0, 0, 0, 1, 0});
  Variable z(Tensor::from({2, 2}, {7.f, 1.f, 7.f, 1.f}), true);
  max(z, 0, true).backward(Tensor::ones({1, 2}));
  CHECK(std::vector<float>(z.grad().values().begin(), z.grad().values().end()) ==
        std::vector<float>{1, 1, 0, 0});
}

TEST_CASE("reductions: forward values and shapes") {
  const Variable x(Tensor::arange(24).reshape({2, 3, 4}));
  CHECK(sum(x).item() == 276.f);
  CHECK(sum(x).shape() == Shape{});
  CHECK(mean(x).item() == doctest::Approx(11.5));
  CHECK(sum(x, 1).shape() == Shape{2, 4});
  CHECK(sum(x, 1, true).shape() == Shape{2, 1, 4});
  CHECK(sum(x, 1).value().at({1, 2}) == 14.f + 18.f + 22.f);
  CHECK(mean(x, -1).value().at({1, 0}) == doctest::Approx(13.5));
  CHECK(max(x, 0).value().at({2, 3}) == 23.f);
  CHECK(max(x).item() == 23.f);
}

// ---------------------------------------------------------------- shape ops

TEST_CASE("reshape, flatten and transpose: gradient matches finite differences") {
  const Tensor x = uniform({2, 3, 4}, 400);
  check_gradients([](const Vars& v) { return reshape(v[0], {4, -1}); }, {x}, named("reshape (4, -1)"));
  check_gradients([](const Vars& v) { return reshape(v[0], {24}); }, {x}, named("reshape (24,)"));
  const Tensor x4 = uniform({2, 3, 2, 2}, 401);
  check_gradients([](const Vars& v) { return flatten(v[0]); }, {x4}, named("flatten 1"));
  check_gradients([](const Vars& v) { return flatten(v[0], 2); }, {x4}, named("flatten 2"));
  check_gradients([](const Vars& v) { return flatten(v[0], 0); }, {x4}, named("flatten 0"));
  struct Dims { int d0, d1; };
  for (const Dims d : {Dims{0, 1}, Dims{0, 2}, Dims{1, 2}, Dims{2, 0}, Dims{-1, -3}, Dims{1, 1}})
    check_gradients([d](const Vars& v) { return transpose(v[0], d.d0, d.d1); }, {x},
                    named(str("transpose ", d.d0, " ", d.d1)));
}

TEST_CASE("transpose: moves element (i, j, k) to (k, j, i)") {
  const Variable x(Tensor::arange(24).reshape({2, 3, 4}));
  const Tensor t = transpose(x, 0, 2).value();
  REQUIRE(t.shape() == Shape{4, 3, 2});
  for (int64_t i = 0; i < 2; ++i)
    for (int64_t j = 0; j < 3; ++j)
      for (int64_t k = 0; k < 4; ++k) CHECK(t.at({k, j, i}) == x.value().at({i, j, k}));
}

// ---------------------------------------------------------------- softmax family

TEST_CASE("softmax and log_softmax: gradient matches finite differences along every axis") {
  const Tensor x = normal({2, 3, 4}, 500, 2.f);
  for (int axis : {0, 1, 2, -1}) {
    check_gradients([axis](const Vars& v) { return softmax(v[0], axis); }, {x}, named(str("softmax axis ", axis)));
    check_gradients([axis](const Vars& v) { return log_softmax(v[0], axis); }, {x},
                    named(str("log_softmax axis ", axis)));
  }
  const Tensor row = normal({1, 7}, 501);
  check_gradients([](const Vars& v) { return log_softmax(v[0]); }, {row}, named("log_softmax (1, 7)"));
}

TEST_CASE("cross_entropy: gradient matches finite differences with respect to the logits") {
  const Tensor logits = normal({4, 5}, 502, 2.f);
  const Tensor labels = Tensor::from_i32({4}, std::vector<int32_t>{0, 4, 2, 4});
  check_gradients([labels](const Vars& v) { return cross_entropy(v[0], labels); }, {logits},
                  named("cross_entropy"));
  const Tensor one = normal({1, 3}, 503);
  check_gradients([](const Vars& v) { return cross_entropy(v[0], Tensor::from_i32({1}, std::vector<int32_t>{1})); },
                  {one}, named("cross_entropy batch 1"));
}

TEST_CASE("cross_entropy: equals the mean of -log_softmax at the labels") {
  const Variable logits(normal({3, 4}, 504));
  const Tensor labels = Tensor::from_i32({3}, std::vector<int32_t>{3, 0, 1});
  const Tensor lp = log_softmax(logits).value();
  const double want = -(lp.at({0, 3}) + lp.at({1, 0}) + lp.at({2, 1})) / 3.0;
  CHECK(cross_entropy(logits, labels).item() == doctest::Approx(want).epsilon(1e-6));
}

// ---------------------------------------------------------------- conv2d

namespace {
void check_conv(const Shape& x_shape, const Shape& w_shape, const Conv2dParams& p, bool with_bias, uint64_t seed) {
  std::vector<Tensor> inputs = {uniform(x_shape, seed), uniform(w_shape, seed + 1)};
  if (with_bias) inputs.push_back(uniform({w_shape[0]}, seed + 2));
  check_gradients(
      [p, with_bias](const Vars& v) { return conv2d(v[0], v[1], with_bias ? v[2] : Variable(), p); }, inputs,
      named(str("conv2d x ", shape_str(x_shape), " w ", shape_str(w_shape), " stride (", p.stride_h, ", ",
                p.stride_w, ") pad (", p.pad_h, ", ", p.pad_w, ")", with_bias ? " with bias" : "")));
}
}  // namespace

TEST_CASE("conv2d: gradient matches finite differences for input, weight and bias") {
  check_conv({2, 3, 5, 5}, {4, 3, 3, 3}, {}, true, 600);
}

TEST_CASE("conv2d: gradient matches finite differences without bias") {
  check_conv({2, 2, 4, 5}, {3, 2, 3, 3}, {}, false, 610);
}

TEST_CASE("conv2d: gradient matches finite differences with batch 1 and a 1x1 kernel") {
  check_conv({1, 3, 4, 4}, {2, 3, 3, 3}, {}, true, 620);
  check_conv({1, 3, 3, 5}, {4, 3, 1, 1}, {}, true, 621);
}

TEST_CASE("conv2d: gradient matches finite differences with non-square 2x3 and 3x1 kernels") {
  check_conv({2, 2, 5, 6}, {3, 2, 2, 3}, {}, true, 630);
  check_conv({1, 2, 5, 4}, {2, 2, 3, 1}, {}, true, 631);
}

TEST_CASE("conv2d: gradient matches finite differences with stride 2") {
  check_conv({2, 2, 7, 7}, {3, 2, 3, 3}, {2, 2, 0, 0}, true, 640);
  check_conv({1, 2, 6, 6}, {2, 2, 2, 2}, {2, 2, 0, 0}, true, 641);  // windows tile the input exactly
}

TEST_CASE("conv2d: gradient matches finite differences with padding 1") {
  check_conv({2, 2, 5, 5}, {3, 2, 3, 3}, {1, 1, 1, 1}, true, 650);
}

TEST_CASE("conv2d: gradient matches finite differences with stride 2 and padding 1 on odd input sizes") {
  check_conv({2, 2, 7, 5}, {3, 2, 3, 3}, {2, 2, 1, 1}, true, 660);
  check_conv({1, 3, 5, 7}, {2, 3, 2, 3}, {2, 2, 1, 1}, false, 661);
}

TEST_CASE("conv2d: gradient matches finite differences with different strides and paddings per axis") {
  check_conv({1, 2, 6, 5}, {2, 2, 3, 2}, {2, 1, 0, 1}, true, 670);
  check_conv({2, 1, 5, 7}, {2, 1, 2, 3}, {1, 3, 2, 0}, true, 671);  // padding larger than half the kernel
}

TEST_CASE("conv2d: gradient matches finite differences with 2 threads") {
  // The batch loops (im2col, col2im, scatter) split across the pool; the default is 1 thread.
  const ThreadCount two(2);
  check_conv({3, 2, 5, 5}, {3, 2, 3, 3}, {2, 2, 1, 1}, true, 680);
}

// ---------------------------------------------------------------- pooling

namespace {
Pool2dParams pool(int kh, int kw, int sh, int sw, int ph = 0, int pw = 0) { return {kh, kw, sh, sw, ph, pw}; }

void check_pools(const Shape& x_shape, const Pool2dParams& p, uint64_t seed) {
  const std::string where = str(" x ", shape_str(x_shape), " kernel (", p.kernel_h, ", ", p.kernel_w, ") stride (",
                                p.stride_h, ", ", p.stride_w, ") pad (", p.pad_h, ", ", p.pad_w, ")");
  check_gradients([p](const Vars& v) { return max_pool2d(v[0], p); }, {distinct(x_shape, seed)},
                  named("max_pool2d" + where));
  check_gradients([p](const Vars& v) { return avg_pool2d(v[0], p); }, {uniform(x_shape, seed)},
                  named("avg_pool2d" + where));
}
}  // namespace

TEST_CASE("max_pool2d and avg_pool2d: gradient matches finite differences with kernel 2 stride 2") {
  check_pools({2, 2, 4, 4}, pool(2, 2, 2, 2), 700);
  check_pools({1, 2, 5, 5}, pool(2, 2, 2, 2), 701);  // odd size: the last row and column are dropped
}

TEST_CASE("max_pool2d and avg_pool2d: gradient matches finite differences with overlapping windows") {
  check_pools({2, 1, 5, 6}, pool(3, 3, 1, 1), 710);
  check_pools({1, 2, 5, 6}, pool(2, 3, 1, 2), 711);
}

TEST_CASE("max_pool2d and avg_pool2d: gradient matches finite differences with padding") {
  check_pools({2, 2, 5, 5}, pool(3, 3, 2, 2, 1, 1), 720);
  check_pools({1, 2, 4, 6}, pool(2, 3, 2, 1, 1, 1), 721);
}

TEST_CASE("max_pool2d and avg_pool2d: gradient matches finite differences with 2 threads") {
  const ThreadCount two(2);
  check_pools({2, 3, 5, 5}, pool(3, 3, 2, 2, 1, 1), 730);
}

TEST_CASE("max_pool2d: ties go to the first element of the window, and padding never wins") {
  Variable x(Tensor::full({1, 1, 2, 2}, 1.f), true);
  max_pool2d(x, pool(2, 2, 2, 2)).backward(Tensor::ones({1, 1, 1, 1}));
  CHECK(std::vector<float>(x.grad().values().begin(), x.grad().values().end()) == std::vector<float>{1, 0, 0, 0});

  const Variable neg_x(Tensor::full({1, 1, 3, 3}, -5.f));
  const Tensor y = max_pool2d(neg_x, pool(3, 3, 2, 2, 1, 1)).value();
  REQUIRE(y.shape() == Shape{1, 1, 2, 2});
  for (float v : y.values()) CHECK(v == -5.f);
}

TEST_CASE("avg_pool2d: padding cells count as zeros in the average") {
  const Variable x(Tensor::ones({1, 1, 2, 2}));
  const Tensor y = avg_pool2d(x, pool(2, 2, 2, 2, 1, 1)).value();
  REQUIRE(y.shape() == Shape{1, 1, 2, 2});
  for (float v : y.values()) CHECK(v == 0.25f);  // each window holds one real cell of four
}

// ---------------------------------------------------------------- batch_norm

namespace {
void check_batch_norm(const Shape& x_shape, bool training, uint64_t seed) {
  const int64_t C = x_shape[1];
  Tensor running_mean = uniform({C}, seed + 3, -0.5f, 0.5f);
  Tensor running_var = uniform({C}, seed + 4, 0.5f, 1.5f);
  // Training mode updates the running statistics on every call, but its output uses the
  // batch statistics only, so every evaluation of fn computes the same function.
  check_gradients(
      [=](const Vars& v) mutable { return batch_norm(v[0], v[1], v[2], running_mean, running_var, training); },
      {normal(x_shape, seed), uniform({C}, seed + 1, 0.5f, 1.5f), uniform({C}, seed + 2)},
      named(str("batch_norm ", training ? "training " : "eval ", shape_str(x_shape))));
}
}  // namespace

TEST_CASE("batch_norm: gradient matches finite differences for x, gamma and beta in training mode") {
  check_batch_norm({5, 3}, true, 800);
  check_batch_norm({2, 3, 3, 2}, true, 801);
}

TEST_CASE("batch_norm: gradient matches finite differences for x, gamma and beta in eval mode") {
  check_batch_norm({4, 3}, false, 810);
  check_batch_norm({2, 2, 3, 3}, false, 811);
}

TEST_CASE("batch_norm: training normalizes each channel and updates the running stats with the unbiased variance") {
  const Tensor xv = normal({4, 2, 3, 3}, 820, 3.f);
  Tensor rm = Tensor::from({2}, {1.f, -1.f}), rv = Tensor::from({2}, {2.f, 0.5f});
  const Variable gamma(Tensor::from({2}, {2.f, 0.5f})), beta(Tensor::from({2}, {0.3f, -0.7f}));
  const Tensor y = batch_norm(Variable(xv), gamma, beta, rm, rv, true, 0.1f).value();
  for (int64_t c = 0; c < 2; ++c) {
    double s = 0, s2 = 0, ys = 0, ys2 = 0;
    const double n = 36;
    for (int64_t b = 0; b < 4; ++b)
      for (int64_t i = 0; i < 3; ++i)
        for (int64_t j = 0; j < 3; ++j) {
          const double v = xv.at({b, c, i, j}), w = y.at({b, c, i, j});
          s += v;
          s2 += v * v;
          ys += w;
          ys2 += w * w;
        }
    const double mean = s / n, var = s2 / n - mean * mean;
    const double g = gamma.value().data()[c], bt = beta.value().data()[c];
    CHECK(ys / n == doctest::Approx(bt).epsilon(1e-4));                                 // mean beta
    CHECK(ys2 / n - (ys / n) * (ys / n) == doctest::Approx(g * g * var / (var + 1e-5)).epsilon(1e-4));  // var gamma^2
    const double rm0 = c == 0 ? 1.0 : -1.0, rv0 = c == 0 ? 2.0 : 0.5;
    CHECK(rm.data()[c] == doctest::Approx(0.9 * rm0 + 0.1 * mean).epsilon(1e-5));
    CHECK(rv.data()[c] == doctest::Approx(0.9 * rv0 + 0.1 * var * n / (n - 1)).epsilon(1e-5));
  }
}

// ---------------------------------------------------------------- dropout

TEST_CASE("dropout: gradient matches finite differences in training with a fixed mask") {
  const Tensor x = uniform({4, 5}, 900);
  // A fresh Rng with the same seed on every call: the same mask on every evaluation.
  check_gradients([](const Vars& v) {
    Rng rng(42);
    return dropout(v[0], 0.3f, true, rng);
  }, {x}, named("dropout training"));
  check_gradients([](const Vars& v) {
    Rng rng(42);
    return dropout(v[0], 0.3f, false, rng);
  }, {x}, named("dropout eval"));
}

TEST_CASE("dropout: training zeroes about p of the elements and scales the rest by 1/(1-p), and eval is the identity") {
  const Variable x(Tensor::ones({100, 100}));
  Rng rng(7);
  const Tensor y = dropout(x, 0.25f, true, rng).value();
  int64_t zeros = 0, others = 0;
  for (float v : y.values()) {
    zeros += v == 0.f;
    others += v != 0.f && v != 1.f / 0.75f;
  }
  CHECK(others == 0);
  CHECK(std::abs(zeros - 2500) < 250);  // binomial(10000, 0.25): standard deviation ~43
  Rng again(7);
  CHECK(bitwise_equal(dropout(x, 0.25f, true, again).value(), y));
  CHECK(bitwise_equal(dropout(x, 0.25f, false, rng).value(), x.value()));
}
