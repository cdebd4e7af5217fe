#include <doctest/doctest.h>

#include "core/check.h"
#include "core/ops.h"
#include "nn/spec.h"

using namespace crayon;

namespace {
std::string spec_error(const std::string& spec, const Shape& in = {1, 28, 28}) {
  Rng rng(0);
  try {
    build_model(spec, in, rng);
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "";
}
}  // namespace

#define CHECK_SPEC_ERROR(spec, text)                 \
  do {                                               \
    const std::string e_ = spec_error(spec);         \
    INFO(e_);                                        \
    CHECK(e_.find(text) != std::string::npos);       \
  } while (0)

TEST_CASE("spec: the presets build and map MNIST and CIFAR images to 10 logits") {
  Rng rng(1);
  for (const char* name : {"mlp", "lenet5"}) {
    auto net = build_model(name, {1, 28, 28}, rng);
    CHECK(net->forward(Variable(Tensor::zeros({3, 1, 28, 28}))).shape() == Shape{3, 10});
    CHECK(net->spec() == preset_spec(name));
  }
  auto cnn = build_model("cifar-cnn", {3, 32, 32}, rng);
  CHECK(cnn->forward(Variable(Tensor::zeros({2, 3, 32, 32}))).shape() == Shape{2, 10});
  CHECK(cnn->spec() == preset_spec("cifar-cnn"));
}

TEST_CASE("spec: the lenet5 parameter count is the classic one") {
  Rng rng(2);
  auto net = build_model("lenet5", {1, 28, 28}, rng);
  int64_t n = 0;
  for (auto& p : net->parameters()) n += p.numel();
  // conv1 6*25+6, conv2 16*6*25+16, fc 400*120+120, 120*84+84, 84*10+10
  CHECK(n == 156 + 2416 + 48120 + 10164 + 850);
}

TEST_CASE("spec: every argument form round-trips through spec()") {
  Rng rng(3);
  const std::string s =
      "conv(4,3x5,stride=2,pad=1x2,bias=0)-bn-relu6-maxpool(3,stride=1,pad=1)-avgpool(2)-flatten-dropout(0.25)-"
      "linear(7,bias=0)-relu-linear(10)";
  auto net = build_model(s, {2, 17, 19}, rng);
  CHECK(net->spec() == s);
  auto again = build_model(net->spec(), {2, 17, 19}, rng);
  CHECK(again->spec() == s);
}

TEST_CASE("spec: errors name the position and what was expected") {
  CHECK_SPEC_ERROR("conv(6,5)-relu-foo", "position 16");
  CHECK_SPEC_ERROR("conv(6,5)-relu-foo", "unknown layer 'foo'");
  CHECK_SPEC_ERROR("conv(6,x)", "expected an integer >= 1 for 'kernel'");
  CHECK_SPEC_ERROR("conv(6,x)", "position 8");
  CHECK_SPEC_ERROR("conv(6,5", "expected ')'");
  CHECK_SPEC_ERROR("conv(6)", "needs argument 'kernel'");
  CHECK_SPEC_ERROR("conv(6,5,size=3)", "unknown argument 'size'");
  CHECK_SPEC_ERROR("linear(10)", "add 'flatten' before it");
  CHECK_SPEC_ERROR("conv(6,30)", "larger than input");
  CHECK_SPEC_ERROR("relu--relu", "expected a layer name");
  CHECK_SPEC_ERROR("relu-", "found the end");
  CHECK_SPEC_ERROR("dropout(1.5)", "[0, 1)");
  CHECK_SPEC_ERROR("", "position 1");
  CHECK_SPEC_ERROR("maxpool(2,pad=2)", "at most half the kernel");
}

TEST_CASE("spec: an error quoting a spec with control characters stays on one line (found by fuzz_spec)") {
  // tests/fuzz/corpus/fuzz_spec/regression-newline: "o!)\n" once gave a three-line message.
  for (const std::string& spec : {std::string("o!)\n"), std::string("conv(6,5)-\n-relu"), std::string("linear(\t3\x01)")}) {
    CAPTURE(spec);
    try {
      model_size(spec, {1, 28, 28});
      FAIL("accepted");
    } catch (const std::invalid_argument& e) {
      const std::string m = e.what();
      CHECK(m.find('\n') == std::string::npos);
      CHECK(m.find('\t') == std::string::npos);
      CHECK(m.find("model spec, position ") == 0);
    }
  }
  CHECK(one_line("a\nb\tc\r\x01\x7f") == "a\\nb\\tc\\r\\x01\\x7f");
  CHECK(one_line("plain ü text") == "plain ü text");
}
