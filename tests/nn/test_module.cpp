#include <doctest/doctest.h>

#include "core/ops.h"
#include "nn/spec.h"
#include "tests/support/tensors.h"

using namespace crayon;

TEST_CASE("Module: parameters and buffers have hierarchical names in layer order") {
  Rng rng(1);
  auto net = build_model("conv(4,3,bias=0)-bn-relu-flatten-linear(10)", {1, 5, 5}, rng);
  std::vector<std::string> names;
  for (auto& [n, v] : net->named_parameters()) names.push_back(n);
  CHECK(names == std::vector<std::string>{"0.weight", "1.weight", "1.bias", "4.weight", "4.bias"});
  std::vector<std::string> buffers;
  for (auto& [n, t] : net->named_buffers()) buffers.push_back(n);
  CHECK(buffers == std::vector<std::string>{"1.running_mean", "1.running_var"});
  CHECK(net->parameters().size() == 5);
}

TEST_CASE("Module: train() and eval() reach every layer, zero_grad() clears every gradient") {
  Rng rng(2);
  // A (1, 1, 3) input needs flattening before linear: the spec must say so.
  CHECK_THROWS_AS(build_model("linear(4)", {1, 2, 3}, rng), std::invalid_argument);
  auto mlp = build_model("flatten-linear(4)-dropout(0.5)-linear(2)", {1, 1, 3}, rng);
  mlp->eval();
  for (auto& [n, c] : mlp->children()) CHECK_FALSE(c->is_training());
  mlp->train();
  for (auto& [n, c] : mlp->children()) CHECK(c->is_training());
  Variable loss = sum((*mlp)(Variable(Tensor::ones({2, 1, 1, 3}))));
  loss.backward();
  for (auto& p : mlp->parameters()) CHECK(p.has_grad());
  mlp->zero_grad();
  for (auto& p : mlp->parameters()) CHECK_FALSE(p.has_grad());
}

TEST_CASE("Module: a parametrization changes what forward() sees, not the stored parameter") {
  Rng rng(3);
  auto net = build_model("flatten-linear(2,bias=0)", {1, 1, 2}, rng);
  Module& fc = (*net)[1];
  const Tensor w = fc.named_parameters()[0].second.value().clone();
  fc.set_parametrization("weight", [](const Variable& v) { return v * 0.f; });
  CHECK(fc.has_parametrization("weight"));
  Variable y = (*net)(Variable(Tensor::ones({1, 1, 1, 2})));
  for (float v : y.value().values()) CHECK(v == 0.f);
  CHECK(testing::bitwise_equal(fc.named_parameters()[0].second.value(), w));
  CHECK_THROWS_AS(fc.set_parametrization("nope", nullptr), std::invalid_argument);
  fc.set_parametrization("weight", nullptr);
  CHECK_FALSE(fc.has_parametrization("weight"));
}

TEST_CASE("Sequential: insert() places a layer and renames the children in order") {
  Rng rng(4);
  auto net = build_model("flatten-linear(3)-linear(2)", {1, 1, 4}, rng);
  net->insert(2, build_model("relu", {3, 1, 1}, rng)->at(0));
  CHECK(net->spec() == "flatten-linear(3)-relu-linear(2)");
  CHECK(net->named_parameters()[2].first == "3.weight");
}

TEST_CASE("Init: Kaiming and Xavier draws have the documented spread and are seeded") {
  Rng a(5), b(5);
  Tensor w1 = init_weight({256, 512}, Init::kaiming_normal, a);
  Tensor w2 = init_weight({256, 512}, Init::kaiming_normal, b);
  CHECK(testing::bitwise_equal(w1, w2));
  double ss = 0;
  for (float v : w1.values()) ss += double(v) * v;
  CHECK(ss / double(w1.numel()) == doctest::Approx(2.0 / 512).epsilon(0.05));
  Tensor x = init_weight({100, 300}, Init::xavier_uniform, a);
  const float bound = std::sqrt(6.f / 400.f);
  for (float v : x.values()) CHECK(std::fabs(v) <= bound);
  CHECK_THROWS_WITH_AS(parse_init("he"), doctest::Contains("unknown initialization 'he'"), std::invalid_argument);
}
