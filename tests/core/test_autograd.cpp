// The autograd tape: accumulation, grad mode, graph shape and depth.
#include <doctest/doctest.h>

#include <pthread.h>

#include <cmath>
#include <functional>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/anomaly.h"
#include "core/ops.h"
#include "tests/support/tensors.h"

using namespace crayon;

namespace {
std::vector<float> values_of(const Tensor& t) { return {t.values().begin(), t.values().end()}; }

// Runs f on a thread with a 512 KiB stack: anything that recurses once per node of a graph
// 1e5 deep (~100 bytes a frame, 10 MB) then overflows in every build type, not only in the
// fat frames of a Debug or sanitizer build.
void run_on_small_stack(const std::function<void()>& f) {
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, size_t(512) << 10);
  pthread_t thread;
  auto trampoline = [](void* arg) -> void* {
    (*static_cast<const std::function<void()>*>(arg))();
    return nullptr;
  };
  REQUIRE(pthread_create(&thread, &attr, trampoline, const_cast<std::function<void()>*>(&f)) == 0);
  pthread_join(thread, nullptr);
  pthread_attr_destroy(&attr);
}
}  // namespace

TEST_CASE("autograd: gradients accumulate across two backward passes on leaves") {
  Variable x(Tensor::from({3}, {1, 2, 3}), true);
  sum(mul(x, 2.f)).backward();
  CHECK(values_of(x.grad()) == std::vector<float>{2, 2, 2});
  sum(mul(x, x)).backward();  // d/dx sum(x^2) = 2x, added on top
  CHECK(values_of(x.grad()) == std::vector<float>{4, 6, 8});
}

TEST_CASE("autograd: zero_grad drops the gradient so the next pass starts from zero") {
  Variable x(Tensor::from({2}, {1, -1}), true);
  sum(mul(x, 3.f)).backward();
  CHECK(x.has_grad());
  x.zero_grad();
  CHECK_FALSE(x.has_grad());
  sum(x).backward();
  CHECK(values_of(x.grad()) == std::vector<float>{1, 1});
}

TEST_CASE("autograd: a gradient accumulated in place (grad_accumulator ops) adds onto an existing one") {
  // exp, sum over an axis and matmul write through grad_accumulator with beta = 1 the
  // second time; the result must equal the sum of both passes.
  Variable a(Tensor::from({2, 2}, {1, 2, 3, 4}), true), b(Tensor::from({2, 1}, {1, -1}), true);
  sum(matmul(a, b)).backward();
  sum(matmul(a, b)).backward();
  CHECK(values_of(a.grad()) == std::vector<float>{2, -2, 2, -2});
  CHECK(values_of(b.grad()) == std::vector<float>{8, 12});
  Variable x(Tensor::zeros({2, 3}), true);
  sum(exp(x)).backward();
  sum(sum(x, 1)).backward();
  CHECK(values_of(x.grad()) == std::vector<float>(6, 2.f));
}

TEST_CASE("autograd: a fresh gradient buffer never mixes in stale memory") {
  // Gradient buffers of in-place accumulating ops are allocated uninitialized and written
  // as beta * g + new with beta = 0; 0 * NaN is NaN, so stale NaN/Inf in recycled memory
  // must not reach the gradient. Free a few NaN-filled blocks of the gradient's size first.
  for (int trial = 0; trial < 3; ++trial) {
    {
      std::vector<Tensor> junk;
      for (int i = 0; i < 8; ++i) junk.push_back(Tensor::full({4, 64}, std::numeric_limits<float>::quiet_NaN()));
    }
    Variable x(Tensor::zeros({4, 64}), true);
    Variable y = mul(x, 1.f);
    y.backward(Tensor::ones({4, 64}));
    bool finite = true;
    for (float v : x.grad().values()) finite = finite && v == 1.f;
    CHECK(finite);
    Variable z(Tensor::zeros({4, 64}), true);
    {
      std::vector<Tensor> junk;
      for (int i = 0; i < 8; ++i) junk.push_back(Tensor::full({4, 64}, std::numeric_limits<float>::infinity()));
    }
    sum(sum(z, 0)).backward();
    bool ones = true;
    for (float v : z.grad().values()) ones = ones && v == 1.f;
    CHECK(ones);
  }
}

TEST_CASE("autograd: NoGradGuard records no graph and restores grad mode on exit") {
  Variable x(Tensor::ones({2}), true);
  CHECK(grad_enabled());
  {
    NoGradGuard guard;
    CHECK_FALSE(grad_enabled());
    {
      NoGradGuard nested;
      CHECK_FALSE(grad_enabled());
    }
    CHECK_FALSE(grad_enabled());
    Variable y = mul(x, 2.f);
    CHECK_FALSE(y.requires_grad());
    CHECK(y.is_leaf());
    CHECK(y.inputs().empty());
    CHECK(values_of(y.value()) == std::vector<float>{2, 2});
  }
  CHECK(grad_enabled());
  CHECK(mul(x, 2.f).requires_grad());
}

TEST_CASE("autograd: detach shares the value but cuts the history") {
  Variable x(Tensor::ones({3}), true);
  Variable y = mul(x, 2.f);
  Variable d = y.detach();
  CHECK_FALSE(d.requires_grad());
  CHECK(d.is_leaf());
  CHECK(d.value().same_storage(y.value()));
  Variable z = mul(add(d, x), 1.f);  // gradient flows to x through the add only
  sum(z).backward();
  CHECK(values_of(x.grad()) == std::vector<float>{1, 1, 1});
}

TEST_CASE("autograd: backward on a non-scalar without a seed throws") {
  Variable x(Tensor::ones({2, 2}), true);
  Variable y = mul(x, 2.f);
  CHECK_THROWS_AS(y.backward(), std::invalid_argument);
  CHECK_THROWS_AS(y.backward(Tensor::ones({4})), std::invalid_argument);  // seed of the wrong shape
  CHECK_FALSE(x.has_grad());
  y.backward(Tensor::ones({2, 2}));
  CHECK(values_of(x.grad()) == std::vector<float>(4, 2.f));
}

TEST_CASE("autograd: backward on a Variable that does not require grad throws") {
  Variable c(Tensor::ones({1}));
  CHECK_THROWS_AS(c.backward(), std::logic_error);
  CHECK_THROWS_AS(mul(c, 2.f).backward(), std::logic_error);
}

TEST_CASE("autograd: a chain 100000 ops deep backpropagates without overflowing the stack") {
  const int depth = 100000;
  Variable x(Tensor::scalar(1.f), true);
  float y_value = 0;
  run_on_small_stack([&] {
    Variable y = x;
    for (int i = 0; i < depth; ++i) y = add(y, 1.f);
    y_value = y.item();
    y.backward();
  });
  CHECK(y_value == float(depth + 1));
  REQUIRE(x.has_grad());
  CHECK(x.grad().item() == 1.f);
}

TEST_CASE("autograd: a chain 100000 ops deep is freed without overflowing the stack") {
  Variable x(Tensor::scalar(1.f), true);
  run_on_small_stack([&] {
    // No backward: dropping the last handle releases the whole tape.
    Variable y = x;
    for (int i = 0; i < 100000; ++i) y = mul(y, 1.f);
  });
  run_on_small_stack([&] {
    // retain_graph keeps the graph through the pass; it is released afterwards.
    Variable y = x;
    for (int i = 0; i < 100000; ++i) y = add(y, 0.f);
    y.backward(true);
  });
  REQUIRE(x.has_grad());
  CHECK(x.grad().item() == 1.f);
}

TEST_CASE("autograd: a diamond graph (x used twice) sums the gradients of both paths") {
  // Two branches from x that meet again, and the join used twice: d = (x^2 + 3x)^2.
  Variable x(Tensor::from({3}, {1, -2, 0.5f}), true);
  Variable a = mul(x, x);     // branch 1: x^2
  Variable b = mul(x, 3.f);   // branch 2: 3x
  Variable c = add(a, b);     // joins
  Variable d = mul(c, c);     // c used twice again
  sum(d).backward();
  // d' = 2 (x^2 + 3x)(2x + 3)
  for (int64_t i = 0; i < 3; ++i) {
    const double v = x.value().data()[i];
    CHECK(x.grad().data()[i] == doctest::Approx(2 * (v * v + 3 * v) * (2 * v + 3)));
  }
}

TEST_CASE("autograd: retain_graph allows a second backward through the same graph") {
  Variable x(Tensor::from({2}, {1, 2}), true);
  Variable y = sum(mul(x, x));
  y.backward(true);
  y.backward(true);
  CHECK(values_of(x.grad()) == std::vector<float>{4, 8});  // 2 * 2x
}

TEST_CASE("autograd: inputs that do not require grad get no gradient") {
  Variable x(Tensor::from({2}, {1, 2}), true);
  Variable c(Tensor::from({2}, {3, 4}));  // constant
  Variable w(Tensor::ones({2, 2}));
  sum(matmul(reshape(mul(x, c), {1, 2}), w)).backward();
  CHECK(x.has_grad());
  CHECK(values_of(x.grad()) == std::vector<float>{6, 8});
  CHECK_FALSE(c.has_grad());
  CHECK_FALSE(w.has_grad());
  CHECK_FALSE(c.requires_grad());
}

TEST_CASE("autograd: interior results require grad and record their op, leaves do not") {
  Variable x(Tensor::ones({2}), true);
  Variable y = exp(x);
  CHECK(y.requires_grad());
  CHECK_FALSE(y.is_leaf());
  CHECK(std::string(y.op_name()) == "exp");
  REQUIRE(y.inputs().size() == 1);
  CHECK(y.inputs()[0].same(x));
  CHECK(x.is_leaf());
  CHECK(std::string(x.op_name()) == "leaf");
  Variable handle = x;
  CHECK(handle.same(x));
  CHECK_FALSE(Variable(x.value()).same(x));
}

TEST_CASE("autograd: set_requires_grad works on leaves only") {
  Variable x(Tensor::ones({2}));
  x.set_requires_grad(true);
  CHECK(x.requires_grad());
  Variable y = mul(x, 2.f);
  CHECK_THROWS_AS(y.set_requires_grad(false), std::logic_error);
}

TEST_CASE("autograd: backward on a leaf adds the seed to its gradient") {
  Variable x(Tensor::from({2}, {5, 6}), true);
  x.backward(Tensor::from({2}, {1, 2}));
  x.backward(Tensor::from({2}, {1, 2}));
  CHECK(values_of(x.grad()) == std::vector<float>{2, 4});
}

TEST_CASE("detect_anomaly: the first non-finite output or gradient names the op and the layer (off: nothing is checked)") {
  struct Restore {
    ~Restore() { set_detect_anomaly(false); }
  } restore;
  Variable x(Tensor::from({3}, std::vector<float>{4.f, 0.f, 1.f}), true);
  // Off: sqrt's gradient at 0 is +Inf and nobody complains (PyTorch's default too).
  sum(sqrt(x)).backward();
  CHECK(std::isinf(x.grad().data()[1]));
  set_detect_anomaly(true);
  x.zero_grad();
  {
    const std::string label = "layer 7 (test)";
    const AnomalyLabel scope(label);
    Variable y = sum(sqrt(x));
    CHECK_THROWS_WITH_AS(y.backward(),
                         "the gradient passed back to an input of op 'sqrt' in layer 7 (test): +Inf at element 1 of "
                         "shape (3,)",
                         AnomalyError);
  }
  // A forward output: log(0) = -Inf, outside any label.
  CHECK_THROWS_WITH_AS(log(x), "the output of op 'log': -Inf at element 1 of shape (3,)", AnomalyError);
  CHECK(anomaly_label().empty());
}
