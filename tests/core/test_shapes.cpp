// Numerical stability at extreme logits, and shape errors: every mismatch throws
// std::invalid_argument with a message naming both shapes involved.
#include <doctest/doctest.h>

#include <cmath>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/ops.h"
#include "tests/support/tensors.h"

using namespace crayon;
using testing::check_close;

namespace {

bool all_finite(const Tensor& t) {
  for (float v : t.values())
    if (!std::isfinite(v)) return false;
  return true;
}

// f must throw std::invalid_argument whose message contains every one of `parts`.
void check_throws_naming(const std::function<void()>& f, const std::vector<std::string>& parts) {
  std::string msg;
  bool thrown = false;
  try {
    f();
  } catch (const std::invalid_argument& e) {
    thrown = true;
    msg = e.what();
  }
  REQUIRE_MESSAGE(thrown, "expected std::invalid_argument naming ", parts.size(), " parts");
  INFO("message: ", msg);
  for (const std::string& p : parts) CHECK_MESSAGE(msg.find(p) != std::string::npos, "missing \"", p, "\"");
}

Variable var(const Shape& s) { return Variable(Tensor::zeros(s)); }

}  // namespace

// ---------------------------------------------------------------- stability

TEST_CASE("softmax: logits of +-1e4 give finite probabilities and the closed-form gradient") {
  // softmax(1e4 + 1, 1e4, -1e4) = (e, 1, 0) / (e + 1): the -1e4 underflows to exactly 0.
  Variable x(Tensor::from({1, 3}, {1e4f + 1.f, 1e4f, -1e4f}), true);
  Variable y = softmax(x);
  REQUIRE(all_finite(y.value()));
  const double e = std::exp(1.0), p0 = e / (e + 1), p1 = 1 / (e + 1);
  check_close(y.value(), Tensor::from({1, 3}, {float(p0), float(p1), 0.f}), 1e-6);
  // dx = y * (dy - sum(dy * y)), with dy = (1, 0, 0): (p0 (1 - p0), -p1 p0, 0).
  y.backward(Tensor::from({1, 3}, {1, 0, 0}));
  REQUIRE(all_finite(x.grad()));
  check_close(x.grad(), Tensor::from({1, 3}, {float(p0 * (1 - p0)), float(-p1 * p0), 0.f}), 1e-6);
}

TEST_CASE("softmax: all-very-negative logits give a uniform distribution, not 0/0") {
  const Tensor y = softmax(Variable(Tensor::full({2, 4}, -1e4f))).value();
  REQUIRE(all_finite(y));
  check_close(y, Tensor::full({2, 4}, 0.25f), 1e-6);
}

TEST_CASE("log_softmax: logits of +-1e4 give finite log-probabilities and the closed-form gradient") {
  Variable x(Tensor::from({1, 3}, {1e4f, -1e4f, 0.f}), true);
  Variable y = log_softmax(x);
  REQUIRE(all_finite(y.value()));
  check_close(y.value(), Tensor::from({1, 3}, {0.f, -2e4f, -1e4f}), 1e-6);
  // dx = dy - softmax * sum(dy); dy = ones, softmax = (1, 0, 0): (-2, 1, 1).
  y.backward(Tensor::ones({1, 3}));
  REQUIRE(all_finite(x.grad()));
  check_close(x.grad(), Tensor::from({1, 3}, {-2.f, 1.f, 1.f}), 1e-6);
}

TEST_CASE("cross_entropy: logits of +-1e4 give a finite loss and the closed-form gradient") {
  // Row 0: the label's logit is 2e4 below the max -> loss 2e4. Row 1: tie of two maxima,
  // label on one of them -> loss log 2. Gradient: (softmax - onehot) / B.
  Variable logits(Tensor::from({2, 3}, {1e4f, -1e4f, 0.f, -1e4f, 1e4f, 1e4f}), true);
  const Tensor labels = Tensor::from_i32({2}, std::vector<int32_t>{1, 2});
  Variable loss = cross_entropy(logits, labels);
  REQUIRE(std::isfinite(loss.item()));
  CHECK(loss.item() == doctest::Approx((2e4 + std::log(2.0)) / 2).epsilon(1e-6));
  loss.backward();
  REQUIRE(all_finite(logits.grad()));
  check_close(logits.grad(), Tensor::from({2, 3}, {0.5f, -0.5f, 0.f, 0.f, 0.25f, -0.25f}), 1e-6);
}

TEST_CASE("sigmoid and tanh: saturate to finite values with zero gradient for |x| = 100") {
  Variable x(Tensor::from({2}, {100.f, -100.f}), true);
  Variable s = sigmoid(x);
  CHECK(s.value().data()[0] == 1.f);
  CHECK(s.value().data()[1] >= 0.f);  // e^-100 / (1 + e^-100): a float denormal, not NaN
  CHECK(s.value().data()[1] < 1e-40f);
  s.backward(Tensor::ones({2}));
  CHECK(all_finite(x.grad()));
  CHECK(std::fabs(x.grad().data()[0]) < 1e-30f);
  Variable t(Tensor::from({2}, {100.f, -100.f}), true);
  Variable y = tanh(t);
  CHECK(y.value().data()[0] == 1.f);
  CHECK(y.value().data()[1] == -1.f);
  y.backward(Tensor::ones({2}));
  CHECK(all_finite(t.grad()));
}

// ---------------------------------------------------------------- shape errors

TEST_CASE("binary ops: non-broadcastable shapes throw naming both shapes") {
  for (auto op : {+[](const Variable& a, const Variable& b) { return add(a, b); },
                  +[](const Variable& a, const Variable& b) { return sub(a, b); },
                  +[](const Variable& a, const Variable& b) { return mul(a, b); },
                  +[](const Variable& a, const Variable& b) { return div(a, b); }}) {
    check_throws_naming([&] { op(var({2, 3}), var({4})); }, {"(2, 3)", "(4,)"});
    check_throws_naming([&] { op(var({2, 3}), var({3, 2})); }, {"(2, 3)", "(3, 2)"});
    check_throws_naming([&] { op(var({2, 3, 4}), var({3, 1, 1})); }, {"(2, 3, 4)", "(3, 1, 1)"});
  }
}

TEST_CASE("matmul: mismatched inner dimensions throw naming both shapes") {
  check_throws_naming([] { matmul(var({2, 3}), var({4, 5})); }, {"(2, 3)", "(4, 5)"});
  check_throws_naming([] { matmul(var({3, 2}), var({3, 5}), true, true); }, {"(3, 2)", "(3, 5)"});
  check_throws_naming([] { matmul(var({2, 3}), var({2, 3})); }, {"(2, 3)"});
  check_throws_naming([] { matmul(var({3}), var({3, 2})); }, {"(3,)", "(3, 2)"});
}

TEST_CASE("conv2d: a channel mismatch throws naming both shapes") {
  check_throws_naming([] { conv2d(var({1, 3, 5, 5}), var({2, 4, 3, 3}), Variable()); },
                      {"(1, 3, 5, 5)", "(2, 4, 3, 3)"});
}

TEST_CASE("conv2d: a bias of the wrong shape throws naming the expected and the given shape") {
  check_throws_naming([] { conv2d(var({1, 3, 5, 5}), var({2, 3, 3, 3}), var({3})); }, {"(2,)", "(3,)"});
  check_throws_naming([] { conv2d(var({1, 3, 5, 5}), var({2, 3, 3, 3}), var({2, 1})); }, {"(2,)", "(2, 1)"});
}

TEST_CASE("conv2d: a kernel larger than the padded input throws naming both shapes") {
  check_throws_naming([] { conv2d(var({1, 1, 3, 3}), var({1, 1, 5, 5}), Variable()); },
                      {"(1, 1, 3, 3)", "(1, 1, 5, 5)"});
  check_throws_naming([] { conv2d(var({2, 1, 8, 2}), var({1, 1, 1, 5}), Variable(), {1, 1, 0, 1}); },
                      {"(2, 1, 8, 2)", "(1, 1, 1, 5)"});
  // With enough padding the same kernel fits.
  CHECK(conv2d(var({1, 1, 3, 3}), var({1, 1, 5, 5}), Variable(), {1, 1, 1, 1}).shape() == Shape{1, 1, 1, 1});
}

TEST_CASE("conv2d: inputs that are not 4-D, and bad strides, throw") {
  check_throws_naming([] { conv2d(var({3, 5, 5}), var({2, 3, 3, 3}), Variable()); }, {"(3, 5, 5)", "(2, 3, 3, 3)"});
  check_throws_naming([] { conv2d(var({1, 3, 5, 5}), var({2, 3, 3}), Variable()); }, {"(1, 3, 5, 5)", "(2, 3, 3)"});
  check_throws_naming([] { conv2d(var({1, 1, 5, 5}), var({1, 1, 3, 3}), Variable(), {0, 1, 0, 0}); }, {"stride 0"});
  check_throws_naming([] { conv2d(var({1, 1, 5, 5}), var({1, 1, 3, 3}), Variable(), {1, 1, -1, 0}); },
                      {"padding -1"});
}

TEST_CASE("batch_norm: gamma, beta or running stats of the wrong shape throw naming both shapes") {
  Tensor rm = Tensor::zeros({3}), rv = Tensor::ones({3});
  check_throws_naming([&] { batch_norm(var({4, 3}), var({4}), var({3}), rm, rv, true); }, {"gamma", "(3,)", "(4,)"});
  check_throws_naming([&] { batch_norm(var({4, 3}), var({3}), var({2}), rm, rv, true); }, {"beta", "(3,)", "(2,)"});
  check_throws_naming([&] { batch_norm(var({2, 3, 2, 2}), var({2}), var({2}), rm, rv, false); }, {"(3,)", "(2,)"});
  Tensor rm5 = Tensor::zeros({5});
  check_throws_naming([&] { batch_norm(var({4, 3}), var({3}), var({3}), rm5, rv, true); },
                      {"running_mean", "(3,)", "(5,)"});
  check_throws_naming([&] { batch_norm(var({4, 3, 2}), var({3}), var({3}), rm, rv, true); }, {"(4, 3, 2)"});
  check_throws_naming([&] { batch_norm(var({1, 3}), var({3}), var({3}), rm, rv, true); }, {"(1, 3)"});
}

TEST_CASE("cross_entropy: labels of the wrong shape or dtype throw naming both") {
  const Variable logits = var({4, 5});
  check_throws_naming([&] { cross_entropy(logits, Tensor::zeros({3}, DType::i32)); }, {"(4,)", "(3,)"});
  check_throws_naming([&] { cross_entropy(logits, Tensor::zeros({4, 1}, DType::i32)); }, {"(4,)", "(4, 1)"});
  check_throws_naming([&] { cross_entropy(logits, Tensor::zeros({4})); }, {"int32", "float32"});
  check_throws_naming([&] { cross_entropy(logits, Tensor::zeros({4}, DType::i8)); }, {"int32", "int8"});
  check_throws_naming([&] { cross_entropy(var({4, 5, 1}), Tensor::zeros({4}, DType::i32)); }, {"(4, 5, 1)"});
}

TEST_CASE("cross_entropy: a label outside 0..C-1 throws naming the label and the range") {
  const Variable logits = var({3, 5});
  check_throws_naming([&] { cross_entropy(logits, Tensor::from_i32({3}, std::vector<int32_t>{0, 5, 1})); },
                      {"label 5", "[0, 5)"});
  check_throws_naming([&] { cross_entropy(logits, Tensor::from_i32({3}, std::vector<int32_t>{-1, 0, 1})); },
                      {"label -1", "[0, 5)"});
}

TEST_CASE("reshape: a shape with a different element count throws naming both shapes") {
  check_throws_naming([] { reshape(var({2, 3}), {4, 2}); }, {"(2, 3)", "(4, 2)"});
  check_throws_naming([] { reshape(var({2, 3}), {4, -1}); }, {"(2, 3)", "(4, -1)"});
  check_throws_naming([] { var({2, 3}).value().reshape({7}); }, {"(2, 3)", "(7,)"});
}

TEST_CASE("transpose, flatten and reductions: an axis out of range throws naming the shape and the axis") {
  check_throws_naming([] { transpose(var({2, 3}), 0, 2); }, {"(2, 3)", "(0, 2)"});
  check_throws_naming([] { transpose(var({2, 3}), -3, 1); }, {"(2, 3)", "(-3, 1)"});
  check_throws_naming([] { flatten(var({2, 3}), 2); }, {"(2, 3)", "start_dim 2"});
  check_throws_naming([] { sum(var({2, 3}), 2); }, {"(2, 3)", "axis 2"});
  check_throws_naming([] { mean(var({2, 3}), -3); }, {"(2, 3)", "axis -3"});
  check_throws_naming([] { max(var({2, 3}), 5); }, {"(2, 3)", "axis 5"});
  check_throws_naming([] { softmax(var({2, 3}), 2); }, {"(2, 3)", "axis 2"});
  check_throws_naming([] { log_softmax(var({2, 3}), -3); }, {"(2, 3)", "axis -3"});
}

TEST_CASE("max_pool2d and avg_pool2d: a 3-D input, an oversized kernel or too much padding throws") {
  const Pool2dParams p{2, 2, 2, 2, 0, 0};
  check_throws_naming([&] { max_pool2d(var({2, 3, 4}), p); }, {"(2, 3, 4)"});
  check_throws_naming([&] { avg_pool2d(var({2, 3, 4}), p); }, {"(2, 3, 4)"});
  check_throws_naming([] { max_pool2d(var({1, 1, 2, 2}), {3, 3, 1, 1, 0, 0}); }, {"(1, 1, 2, 2)", "kernel 3"});
  check_throws_naming([] { avg_pool2d(var({1, 1, 2, 5}), {3, 3, 1, 1, 0, 0}); }, {"(1, 1, 2, 5)", "kernel 3"});
  check_throws_naming([] { max_pool2d(var({1, 1, 4, 4}), {2, 2, 2, 2, 2, 0}); }, {"padding"});
}

TEST_CASE("Tensor::from: a value count that does not match the shape throws naming the shape and both counts") {
  const std::vector<float> five(5, 1.f);
  check_throws_naming([&] { Tensor::from({2, 3}, five); }, {"(2, 3)", "6", "5"});
  const std::vector<int32_t> two(2, 0);
  check_throws_naming([&] { Tensor::from_i32({3}, two); }, {"(3,)", "3", "2"});
}

TEST_CASE("gradients and seeds of the wrong shape throw naming both shapes") {
  Variable x(Tensor::zeros({2, 3}), true);
  check_throws_naming([&] { x.add_grad(Tensor::zeros({3, 2})); }, {"(2, 3)", "(3, 2)"});
  Variable y = mul(x, 2.f);
  check_throws_naming([&] { y.backward(Tensor::ones({6})); }, {"(2, 3)", "(6,)"});
  check_throws_naming([&] { y.backward(); }, {"(2, 3)"});
  Tensor t = Tensor::zeros({2, 3});
  check_throws_naming([&] { t.copy_from(Tensor::zeros({3, 2})); }, {"(2, 3)", "(3, 2)"});
}
