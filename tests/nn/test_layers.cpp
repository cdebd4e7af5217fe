// Every layer's gradient, checked by finite differences through the layer's own forward().
// The check's leaf Variables are substituted for the layer's parameters through
// parametrizations, so what is differentiated is exactly the layer's code.
#include <doctest/doctest.h>

#include <cstring>
#include <memory>

#include "core/ops.h"
#include "nn/activations.h"
#include "nn/batchnorm.h"
#include "nn/conv2d.h"
#include "nn/linear.h"
#include "nn/pooling.h"
#include "nn/sequential.h"
#include "nn/spec.h"
#include "tests/support/gradcheck.h"
#include "tests/support/tensors.h"
#include "tests/support/thread_replicas.h"
#include "tests/support/threads.h"

using namespace crayon;
using namespace crayon::testing;

namespace {

// Modules owning parameters, each with its own parameter names, in named_parameters order.
void own_params(Module& m, std::vector<std::pair<Module*, std::string>>& out) {
  for (auto& [name, v] : m.named_parameters())
    if (name.find('.') == std::string::npos) out.emplace_back(&m, name);
  for (auto& [n, c] : m.children()) own_params(*c, out);
}

// Check d(layer(x))/dx and d/d(every parameter) at the layer's current parameter values.
void check_layer(Module& layer, const Tensor& x, const std::string& name, const std::function<void()>& before = {}) {
  std::vector<std::pair<Module*, std::string>> slots;
  own_params(layer, slots);
  std::vector<Tensor> inputs{x};
  for (auto& [n, v] : layer.named_parameters()) inputs.push_back(v.value().clone());
  REQUIRE(inputs.size() == slots.size() + 1);
  GradFn fn = [&](const std::vector<Variable>& v) {
    if (before) before();
    for (size_t i = 0; i < slots.size(); ++i) {
      Variable leaf = v[i + 1];
      slots[i].first->set_parametrization(slots[i].second, [leaf](const Variable&) { return leaf; });
    }
    return layer.forward(v[0]);
  };
  GradCheckOptions opts;
  opts.name = name;
  check_gradients(fn, inputs, opts);
  for (auto& [m, n] : slots) m->set_parametrization(n, nullptr);
}

}  // namespace

TEST_CASE("Linear: gradient matches finite differences for input, weight and bias") {
  Rng rng(1);
  Linear fc(7, 3, true, rng);
  check_layer(fc, uniform({4, 7}, 2), "linear");
  Linear nobias(5, 2, false, rng);
  check_layer(nobias, uniform({1, 5}, 3), "linear without bias");
}

TEST_CASE("Conv2d: gradient matches finite differences with stride, padding and a non-square kernel") {
  Rng rng(4);
  Conv2d c1(2, 3, 3, 3, {1, 1, 1, 1}, true, rng);
  check_layer(c1, uniform({2, 2, 5, 5}, 5), "conv 3x3 pad 1");
  Conv2d c2(1, 2, 2, 3, {2, 2, 1, 0}, false, rng);
  check_layer(c2, uniform({1, 1, 6, 7}, 6), "conv 2x3 stride 2 pad (1,0)");
}

TEST_CASE("MaxPool2d and AvgPool2d: gradients match finite differences") {
  MaxPool2d mp({2, 2, 2, 2, 0, 0});
  check_layer(mp, distinct({2, 2, 4, 4}, 7), "maxpool 2");
  AvgPool2d ap({3, 3, 2, 2, 1, 1});
  check_layer(ap, uniform({1, 2, 5, 5}, 8), "avgpool 3 stride 2 pad 1");
}

TEST_CASE("BatchNorm: gradient matches finite differences in training and eval mode") {
  BatchNorm bn(3);
  check_layer(bn, uniform({4, 3, 2, 2}, 9), "bn train 4-D");
  check_layer(bn, uniform({5, 3}, 10), "bn train 2-D");
  bn.eval();
  check_layer(bn, uniform({2, 3, 2, 2}, 11), "bn eval");
}

TEST_CASE("BatchNorm: running statistics follow PyTorch's update rule") {
  BatchNorm bn(1, 0.1f);
  Variable x(Tensor::from({4, 1}, {1.f, 2.f, 3.f, 6.f}));
  bn.forward(x);
  const auto buffers = bn.named_buffers();
  // mean 3, unbiased variance (4+1+0+9)/3 = 14/3
  CHECK(buffers[0].second.data()[0] == doctest::Approx(0.1 * 3.0));
  CHECK(buffers[1].second.data()[0] == doctest::Approx(0.9 + 0.1 * 14.0 / 3.0));
}

TEST_CASE("ReLU, ReLU6 and Flatten: gradients match finite differences away from the kinks") {
  ReLU r;
  check_layer(r, away_from_zero({3, 4}, 12), "relu");
  ReLU6 r6;
  Tensor x = away_from_zero({3, 4}, 13, 0.1f, 5.5f);
  check_layer(r6, x, "relu6");
  Flatten f;
  check_layer(f, uniform({2, 3, 2, 2}, 14), "flatten");
}

TEST_CASE("Dropout: gradient matches finite differences for a fixed mask, and eval is the identity") {
  Dropout d(0.3f, 15);
  const Tensor saved = d.named_buffers()[0].second.clone();
  Tensor state = d.named_buffers()[0].second;
  check_layer(d, uniform({4, 5}, 16), "dropout", [&] { state.copy_from(saved); });
  d.eval();
  Tensor x = uniform({4, 5}, 17);
  CHECK(bitwise_equal(d.forward(Variable(x)).value(), x));
}

TEST_CASE("Dropout: zeroes about p of the units, scales the rest by 1/(1-p), and advances its generator") {
  Dropout d(0.25f, 3);
  Tensor ones = Tensor::ones({100, 100});
  Tensor y1 = d.forward(Variable(ones)).value().clone();
  int64_t zeros = 0;
  for (float v : y1.values()) {
    CHECK((v == 0.f || v == doctest::Approx(1.f / 0.75f)));
    zeros += v == 0.f;
  }
  CHECK(double(zeros) / 1e4 == doctest::Approx(0.25).epsilon(0.1));
  Tensor y2 = d.forward(Variable(ones)).value();
  CHECK_FALSE(bitwise_equal(y1, y2));
}

TEST_CASE("Dropout: data-parallel replicas with their rows of a batch draw the whole batch's mask and end in its state") {
  ThreadCount one(1);
  const int64_t G = 5, cut[3] = {0, 2, G};
  Dropout whole(0.5f, 9);
  const Tensor ones = Tensor::ones({G, 6});
  const Tensor want = whole.forward(Variable(ones)).value().clone();
  std::vector<Tensor> got(2), state(2);
  test::ThreadReplicas replicas(2);
  replicas.run([&](Replicas& rep, int r) {
    Dropout d(0.5f, 9);
    ReplicaScope shard(&rep, {cut[r], cut[r + 1] - cut[r], G});
    got[size_t(r)] = d.forward(Variable(ones.slice(cut[r], cut[r + 1]).clone())).value().clone();
    state[size_t(r)] = d.named_buffers()[0].second.clone();
  });
  for (int r = 0; r < 2; ++r) {
    CHECK(bitwise_equal(got[size_t(r)], want.slice(cut[r], cut[r + 1]).clone()));
    const Tensor end = whole.named_buffers()[0].second;  // the generator's words (int32)
    CHECK(std::memcmp(state[size_t(r)].data_as<int32_t>(), end.data_as<int32_t>(), end.nbytes()) == 0);
  }
}

// The stack is kept smooth (no relu or max): a step of eps in one input moves many values
// downstream, and near a kink one of them would cross it; each kinked layer is checked
// on its own above.
TEST_CASE("Sequential convnet: gradient of every parameter matches finite differences") {
  Rng rng(18);
  auto net = build_model("conv(2,3,pad=1)-bn-avgpool(2)-conv(3,2)-avgpool(2)-flatten-linear(4)-linear(3)", {1, 6, 6}, rng);
  check_layer(*net, uniform({3, 1, 6, 6}, 19), "small convnet");
}
