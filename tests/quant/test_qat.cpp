// QAT and PTQ by configuration (DESIGN.md, idea 6): prepare_qat puts fake-quant on every
// weight (a parametrization) and on the activations (FakeQuant modules), BN folds into the
// conv before it, calibrate() runs PTQ with any observer. Through rounding, finite
// differences mean nothing, so the tests assert exact properties (values on the grid,
// gradients present and finite, frozen qparams, bit-identical restores) and end with the
// issue's end-to-end checks on the real MNIST in data/mnist, including two that a no-op
// fake-quant fails: 2-bit logits differ from float, and QAT beats PTQ at W2A4.
#include <doctest/doctest.h>

#include <chrono>
#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/check.h"
#include "core/ops.h"
#include "data/dataset.h"
#include "data/loader.h"
#include "nn/activations.h"
#include "nn/batchnorm.h"
#include "nn/conv2d.h"
#include "nn/linear.h"
#include "nn/spec.h"
#include "optim/sgd.h"
#include "quant/bn_fold.h"
#include "quant/qat.h"
#include "tests/support/tensors.h"

using namespace crayon;
using crayon::testing::bitwise_equal;
using crayon::testing::check_close;

namespace {

const Shape kMnistShape{1, 28, 28};

std::shared_ptr<Sequential> model_for(const std::string& preset, uint64_t seed = 1) {
  Rng rng(seed);
  return build_model(preset, preset == "cifar-cnn" ? Shape{3, 32, 32} : kMnistShape, rng);
}

Shape batch_shape(const std::string& preset, int64_t b) {
  return preset == "cifar-cnn" ? Shape{b, 3, 32, 32} : Shape{b, 1, 28, 28};
}

Tensor named_param(const Module& m, const std::string& name) {
  for (const auto& [n, v] : m.named_parameters())
    if (n == name) return v.value();
  FAIL("no parameter " << name);
  return {};
}

// Copies every parameter and buffer of `from` into `to`, by name (a checkpoint in memory).
void copy_state(const Module& from, Module& to) {
  const auto fp = from.named_parameters();
  const auto tp = to.named_parameters();
  REQUIRE(fp.size() == tp.size());
  for (size_t i = 0; i < fp.size(); ++i) {
    REQUIRE(fp[i].first == tp[i].first);
    Tensor dst = tp[i].second.value();
    dst.copy_from(fp[i].second.value());
  }
  const auto fb = from.named_buffers();
  const auto tb = to.named_buffers();
  REQUIRE(fb.size() == tb.size());
  for (size_t i = 0; i < fb.size(); ++i) {
    REQUIRE(fb[i].first == tb[i].first);
    Tensor dst = tb[i].second;
    dst.copy_from(fb[i].second);
  }
}

NamedTensors snapshot_buffers(const Module& m) {
  NamedTensors out;
  for (const auto& [n, t] : m.named_buffers()) out.emplace_back(n, t.clone());
  return out;
}

void restore_buffers(Module& m, const NamedTensors& saved) {
  auto now = m.named_buffers();
  REQUIRE(now.size() == saved.size());
  for (size_t i = 0; i < now.size(); ++i) {
    REQUIRE(now[i].first == saved[i].first);
    now[i].second.copy_from(saved[i].second);
  }
}

// |v / scale + zero_point - round(.)| tiny and round(.) in [qmin, qmax], for every value.
void check_on_grid(const Tensor& v, const QParams& qp, const QuantSpec& spec, const std::string& what) {
  INFO(what);
  const int64_t channels = int64_t(qp.channels());
  const int64_t inner = qp.axis < 0 ? v.numel() : inner_size(v.shape(), qp.axis);
  int64_t bad = 0;
  for (int64_t i = 0; i < v.numel(); ++i) {
    const size_t c = size_t(channel_of(i, inner, channels));
    const double t = double(v.data()[i]) / qp.scale[c] + qp.zero_point[c];
    const double r = std::nearbyint(t);
    if (!(std::fabs(t - r) < 1e-3 && r >= spec.qmin() && r <= spec.qmax())) {
      if (bad++ < 3) FAIL_CHECK("value ", v.data()[i], " at ", i, " -> ", t, " is off the grid");
    }
  }
  CHECK(bad == 0);
}

// The weight a layer's forward pass actually uses, recovered by a black-box probe with the
// bias zeroed: a Linear fed the identity returns W^T; a Conv2d (stride 1, padding p) fed the
// one-hot images e_(c,a,b) of size (kh, kw) returns W[o, c, a, b] at output (p, p).
Tensor effective_weight(Module& layer) {
  NoGradGuard no_grad;
  Tensor bias;
  for (const auto& [n, v] : layer.named_parameters())
    if (n == "bias") bias = v.value();
  const Tensor saved = bias.defined() ? bias.clone() : Tensor();
  if (bias.defined()) bias.fill(0.f);
  Tensor w;
  if (auto* lin = dynamic_cast<Linear*>(&layer)) {
    const int64_t in = lin->in_features(), out = lin->out_features();
    Tensor eye = Tensor::zeros({in, in});
    for (int64_t i = 0; i < in; ++i) eye.data()[i * in + i] = 1.f;
    const Tensor y = layer.forward(Variable(eye)).value();  // (in, out) = W^T
    w = Tensor::empty({out, in});
    for (int64_t o = 0; o < out; ++o)
      for (int64_t i = 0; i < in; ++i) w.data()[o * in + i] = y.data()[i * out + o];
  } else {
    auto& conv = dynamic_cast<Conv2d&>(layer);
    REQUIRE(conv.params().stride_h == 1);
    REQUIRE(conv.params().stride_w == 1);
    const int64_t C = conv.in_channels(), O = conv.out_channels(), kh = conv.kernel_h(), kw = conv.kernel_w();
    const int64_t n = C * kh * kw, ph = conv.params().pad_h, pw = conv.params().pad_w;
    Tensor x = Tensor::zeros({n, C, kh, kw});
    for (int64_t k = 0; k < n; ++k) x.data()[k * n + k] = 1.f;  // image k: one-hot at flat index k
    const Tensor y = layer.forward(Variable(x)).value();     // (n, O, 1 + 2ph, 1 + 2pw)
    const int64_t oh = y.size(2), ow = y.size(3);
    w = Tensor::empty({O, C, kh, kw});
    for (int64_t o = 0; o < O; ++o)
      for (int64_t k = 0; k < n; ++k) w.data()[o * n + k] = y.data()[((k * O + o) * oh + ph) * ow + pw];
  }
  if (bias.defined()) bias.copy_from(saved);
  return w;
}

// ---------------------------------------------------------------- real MNIST

const Dataset& mnist(bool train) {
  static const Dataset tr = load_mnist_like(std::string(CRAYON_SOURCE_DIR) + "/data/mnist", true).slice(0, 3000);
  static const Dataset te = load_mnist_like(std::string(CRAYON_SOURCE_DIR) + "/data/mnist", false).slice(0, 1000);
  return train ? tr : te;
}

LoaderOptions loader_options(bool shuffle) {
  return {.batch_size = 64, .shuffle = shuffle, .seed = 11, .norm = mnist_stats()};
}

// Top-1 accuracy in percent, in eval mode.
double accuracy(Sequential& model, const Dataset& data) {
  NoGradGuard no_grad;
  const bool training = model.is_training();
  model.eval();
  LoaderOptions opt = loader_options(false);
  opt.batch_size = 500;
  DataLoader loader(data, opt);
  Batch b;
  int64_t correct = 0;
  while (loader.next(b)) {
    const Tensor logits = model.forward(Variable(b.images)).value();
    const int64_t C = logits.size(1);
    for (int64_t i = 0; i < b.size(); ++i) {
      int64_t best = 0;
      for (int64_t c = 1; c < C; ++c)
        if (logits.data()[i * C + c] > logits.data()[i * C + best]) best = c;
      correct += best == b.labels.data_as<int32_t>()[i] ? 1 : 0;
    }
  }
  model.train(training);
  return 100.0 * double(correct) / double(data.size());
}

// SGD with momentum over `epochs` of the 3000 training images, the learning rate decaying
// linearly to 0, so the run ends in a settled state rather than mid-oscillation (two runs
// can then be compared on their final accuracy).
void train(Sequential& model, int epochs, float lr) {
  model.train();
  SGD opt(model.parameters(), {.lr = lr, .momentum = 0.9f});
  DataLoader loader(mnist(true), loader_options(true));
  const int64_t total = epochs * loader.num_batches();
  int64_t step = 0;
  for (int e = 0; e < epochs; ++e) {
    loader.start_epoch(e);
    Batch b;
    while (loader.next(b)) {
      opt.set_lr(lr * float(total - step++) / float(total));
      opt.zero_grad();
      Variable loss = cross_entropy(model.forward(Variable(b.images)), b.labels);
      REQUIRE(std::isfinite(loss.item()));
      loss.backward();
      opt.step();
    }
  }
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// The logits of every image of data, (N, classes), in eval mode.
Tensor all_logits(Sequential& model, const Dataset& data) {
  NoGradGuard no_grad;
  const bool training = model.is_training();
  model.eval();
  LoaderOptions opt = loader_options(false);
  opt.batch_size = 500;
  DataLoader loader(data, opt);
  Batch b;
  std::vector<float> out;
  int64_t classes = 0;
  while (loader.next(b)) {
    const Tensor l = model.forward(Variable(b.images)).value();
    classes = l.size(1);
    out.insert(out.end(), l.values().begin(), l.values().end());
  }
  model.train(training);
  return Tensor::from({int64_t(out.size()) / classes, classes}, out);
}

// How far the logits `got` are from `want` (same shape): mean |difference|, mean |want|,
// and the fraction of rows whose argmax differs.
struct LogitChange {
  double mean_abs_diff = 0, mean_abs = 0, changed = 0;
};
LogitChange logit_change(const Tensor& got, const Tensor& want) {
  REQUIRE(got.shape() == want.shape());
  const int64_t n = want.size(0), classes = want.size(1);
  LogitChange c;
  int64_t changed = 0;
  for (int64_t i = 0; i < n; ++i) {
    const float *g = got.data() + i * classes, *w = want.data() + i * classes;
    int64_t bg = 0, bw = 0;
    for (int64_t k = 0; k < classes; ++k) {
      c.mean_abs_diff += std::fabs(double(g[k]) - double(w[k]));
      c.mean_abs += std::fabs(double(w[k]));
      if (g[k] > g[bg]) bg = k;
      if (w[k] > w[bw]) bw = k;
    }
    changed += bg != bw ? 1 : 0;
  }
  c.mean_abs_diff /= double(n * classes);
  c.mean_abs /= double(n * classes);
  c.changed = double(changed) / double(n);
  return c;
}

// A copy of float_model (a `preset` built with `seed`) calibrated by PTQ on 8 training
// batches at weight_bits / act_bits, with the default min-max observer.
std::shared_ptr<Sequential> ptq_copy(const Sequential& float_model, const std::string& preset, uint64_t seed,
                                     int weight_bits, int act_bits) {
  auto q = model_for(preset, seed);
  copy_state(float_model, *q);
  QatConfig config;
  config.weight.bits = weight_bits;
  config.act.bits = act_bits;
  DataLoader loader(mnist(true), loader_options(true));
  calibrate(*q, loader.images(), 8, config);
  return q;
}

}  // namespace

// ---------------------------------------------------------------- configuration

TEST_CASE("qat config: defaults are int8 per-channel symmetric weights and affine per-tensor activations") {
  const QatConfig c;
  CHECK(c.weight.bits == 8);
  CHECK(c.weight.symmetric);
  CHECK(c.weight.narrow_range);
  CHECK(c.weight.axis == 0);
  CHECK(c.act.bits == 8);
  CHECK_FALSE(c.act.symmetric);
  CHECK(c.act.axis == -1);
  CHECK(c.observer == "minmax");
  CHECK(c.fold_bn);
  CHECK_NOTHROW(validate(c));
}

TEST_CASE("qat config: the text form parses, describes itself, and round-trips") {
  const QatConfig c = parse_qat_config(
      "weight_bits=4,act_bits=6,per_channel=0,rounding=stochastic,ste=clipped,observer=percentile:99.9,warmup=7,"
      "fold_bn=0,seed=42");
  CHECK(c.weight.bits == 4);
  CHECK(c.act.bits == 6);
  CHECK(c.weight.axis == -1);
  CHECK(c.weight.rounding == Rounding::stochastic);
  CHECK(c.act.rounding == Rounding::stochastic);
  CHECK(c.ste == Ste::clipped);
  CHECK(c.observer == "percentile:99.9");
  CHECK(c.warmup_steps == 7);
  CHECK_FALSE(c.fold_bn);
  CHECK(c.seed == 42);
  const QatConfig back = parse_qat_config(describe(c));
  CHECK(describe(back) == describe(c));
  CHECK(describe(parse_qat_config("")) == describe(QatConfig{}));

  QatConfig d;
  set_qat_option(d, "--act-bits", "4");
  set_qat_option(d, "act_rounding", "stochastic");
  CHECK(d.act.bits == 4);
  CHECK(d.act.rounding == Rounding::stochastic);
  CHECK(d.weight.rounding == Rounding::nearest_even);
  CHECK(describe(parse_qat_config(describe(d))) == describe(d));
}

TEST_CASE("qat config: a bad value is rejected naming the option and what was expected") {
  auto error = [](const std::string& text) {
    try {
      parse_qat_config(text);
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  CHECK(error("weight_bits=9").find("weight_bits") != std::string::npos);
  CHECK(error("act_bits=x").find("[2, 8]") != std::string::npos);
  CHECK(error("ste=round").find("plain or clipped") != std::string::npos);
  CHECK(error("observer=bogus").find("minmax") != std::string::npos);
  CHECK(error("warmup=-1").find("warmup") != std::string::npos);
  CHECK(error("per_channel=maybe").find("0 or 1") != std::string::npos);
  CHECK(error("rounding=up").find("stochastic") != std::string::npos);
  CHECK(error("frobnicate=1").find("unknown qat option 'frobnicate'") != std::string::npos);
  CHECK(error("weight_bits").find("key=value") != std::string::npos);
}

// ---------------------------------------------------------------- prepare_qat

TEST_CASE("prepare_qat: lenet5, mlp and cifar-cnn get fake-quant on every weight and between layers") {
  const QatConfig config;
  const char* fq = "fakequant(8)";
  struct Case {
    const char* preset;
    std::string want;
  };
  const std::vector<Case> cases = {
      {"lenet5", str(fq, "-conv(6,5,pad=2)-relu6-", fq, "-maxpool(2)-conv(16,5)-relu6-", fq,
                     "-maxpool(2)-flatten-linear(120)-relu6-", fq, "-linear(84)-relu6-", fq, "-linear(10)")},
      {"mlp", str(fq, "-flatten-linear(256)-relu-", fq, "-linear(128)-relu-", fq, "-linear(10)")},
      // BN folded: each conv gains a bias and its BN disappears.
      {"cifar-cnn", str(fq, "-conv(32,3,pad=1)-relu-", fq, "-conv(32,3,pad=1)-relu-", fq, "-maxpool(2)-",
                        "conv(64,3,pad=1)-relu-", fq, "-conv(64,3,pad=1)-relu-", fq, "-maxpool(2)-",
                        "conv(128,3,pad=1)-relu-", fq, "-conv(128,3,pad=1)-relu-", fq, "-maxpool(2)-flatten-linear(10)")},
  };
  for (const Case& c : cases) {
    INFO(c.preset);
    auto model = model_for(c.preset);
    prepare_qat(*model, config);
    CHECK(model->spec() == c.want);
    int weights = 0;
    for (size_t i = 0; i < model->size(); ++i)
      if (dynamic_cast<Linear*>(&(*model)[i]) || dynamic_cast<Conv2d*>(&(*model)[i])) {
        CHECK((*model)[i].has_parametrization("weight"));
        CHECK_FALSE((*model)[i].has_parametrization("bias"));
        ++weights;
      }
    CHECK(weights == (std::string(c.preset) == "mlp" ? 3 : (std::string(c.preset) == "lenet5" ? 5 : 7)));
    // The float spec of the prepared model builds (the checkpoint plan) and is the preset,
    // BN folded away.
    Rng rng(3);
    const Shape input = std::string(c.preset) == "cifar-cnn" ? Shape{3, 32, 32} : kMnistShape;
    CHECK_NOTHROW(build_model(float_spec(*model), input, rng));
    if (std::string(c.preset) != "cifar-cnn") CHECK(float_spec(*model) == preset_spec(c.preset));
    // A second prepare is refused.
    CHECK_THROWS_WITH_AS(prepare_qat(*model, config), doctest::Contains("already prepared"), std::invalid_argument);
  }
}

TEST_CASE("prepare_qat: a layer not followed by an activation gets a fake-quant, the final logits do not") {
  Rng rng(4);
  auto model = build_model("conv(4,3)-maxpool(2)-flatten-linear(8)-linear(3)", {1, 8, 8}, rng);
  prepare_qat(*model, QatConfig{});
  CHECK(model->spec() == "fakequant(8)-conv(4,3)-fakequant(8)-maxpool(2)-flatten-linear(8)-fakequant(8)-linear(3)");

  // fold_bn = 0 keeps BN in float and quantizes once after conv-bn-relu.
  auto bn_model = build_model("conv(4,3,bias=0)-bn-relu-flatten-linear(3)", {1, 6, 6}, rng);
  QatConfig keep;
  keep.fold_bn = false;
  prepare_qat(*bn_model, keep);
  CHECK(bn_model->spec() == "fakequant(8)-conv(4,3,bias=0)-bn-relu-fakequant(8)-flatten-linear(3)");

  // A BN after no conv/linear cannot be folded.
  auto lone_bn = build_model("bn-conv(2,3)-flatten-linear(3)", {1, 6, 6}, rng);
  CHECK_THROWS_WITH_AS(prepare_qat(*lone_bn, QatConfig{}), doctest::Contains("cannot be folded"),
                       std::invalid_argument);
}

TEST_CASE("qat: the weights every forward pass uses lie on the per-channel int8 grid, max |w| on +-127") {
  const QatConfig config;
  for (const char* preset : {"lenet5", "mlp"}) {
    auto model = model_for(preset, 5);
    prepare_qat(*model, config);
    for (bool training : {true, false}) {
      model->train(training);
      for (size_t i = 0; i < model->size(); ++i) {
        Module& layer = (*model)[i];
        if (!dynamic_cast<Linear*>(&layer) && !dynamic_cast<Conv2d*>(&layer)) continue;
        INFO(preset, " layer ", i, " ", layer.spec(), training ? " training" : " eval");
        const Tensor w = named_param(layer, "weight");
        const Tensor wq = effective_weight(layer);
        const QParams qp = weight_qparams(w, config.weight);
        REQUIRE(int64_t(qp.channels()) == w.size(0));
        check_on_grid(wq, qp, config.weight, "effective weight");
        // Round-trip error at most half a step, and each channel's largest |w| lands on 127.
        const int64_t per = w.numel() / w.size(0);
        for (int64_t c = 0; c < w.size(0); ++c) {
          double max_q = 0, max_err = 0;
          for (int64_t k = 0; k < per; ++k) {
            const int64_t j = c * per + k;
            max_q = std::max(max_q, std::fabs(double(wq.data()[j]) / qp.scale[size_t(c)]));
            max_err = std::max(max_err, std::fabs(double(wq.data()[j]) - double(w.data()[j])));
          }
          CHECK(std::nearbyint(max_q) == 127);
          CHECK(max_err <= 0.5 * qp.scale[size_t(c)] * (1 + 1e-5));
        }
      }
    }
  }
}

TEST_CASE("qat: activations after every fake-quant lie on its grid, in warm-up and in eval") {
  for (const char* preset : {"lenet5", "mlp"}) {
    INFO(preset);
    auto model = model_for(preset, 6);
    QatConfig config;
    config.warmup_steps = 2;
    prepare_qat(*model, config);
    NoGradGuard no_grad;
    for (int pass = 0; pass < 3; ++pass) {
      model->train(pass < 2);  // two warm-up passes, then eval
      Variable h(crayon::testing::normal(batch_shape(preset, 3), 100 + uint64_t(pass)));
      int checked = 0;
      for (size_t i = 0; i < model->size(); ++i) {
        h = (*model)[i].forward(h);
        if (auto* fq = dynamic_cast<FakeQuant*>(&(*model)[i])) {
          check_on_grid(h.value(), fq->qparams(), config.act, str("after layer ", i, ", pass ", pass));
          ++checked;
        }
      }
      CHECK(checked == (std::string(preset) == "mlp" ? 3 : 5));
    }
    for (const auto& [name, fq] : fake_quant_modules(*model)) {
      CHECK(fq->frozen());
      CHECK(fq->steps() == 2);
    }
  }
}

TEST_CASE("qat: gradients reach every parameter through the straight-through estimator and are finite") {
  for (const char* preset : {"lenet5", "mlp", "cifar-cnn"}) {
    INFO(preset);
    auto model = model_for(preset, 7);
    prepare_qat(*model, QatConfig{});
    model->train();
    const Tensor labels = Tensor::from_i32({2}, std::vector<int32_t>{3, 7});
    Variable loss = cross_entropy(model->forward(Variable(crayon::testing::normal(batch_shape(preset, 2), 8))), labels);
    REQUIRE(std::isfinite(loss.item()));
    loss.backward();
    for (const auto& [name, p] : model->named_parameters()) {
      INFO(name);
      REQUIRE(p.has_grad());
      double total = 0;
      bool finite = true;
      for (float g : p.grad().values()) {
        finite = finite && std::isfinite(g);
        total += std::fabs(g);
      }
      CHECK(finite);
      CHECK(total > 0);
    }
  }
}

TEST_CASE("qat: with stochastic rounding the weights stay on the grid and eval rounds to nearest") {
  auto model = model_for("mlp", 9);
  QatConfig config = parse_qat_config("rounding=stochastic,seed=5");
  prepare_qat(*model, config);
  Module& layer = (*model)[2];  // linear(256)
  const Tensor w = named_param(layer, "weight");
  const QParams qp = weight_qparams(w, config.weight);
  model->train();
  const Tensor a = effective_weight(layer), b = effective_weight(layer);
  check_on_grid(a, qp, config.weight, "stochastic");
  CHECK(bitwise_equal(a, b));  // the draws are a function of (seed, weights): reproducible
  model->eval();
  QuantSpec nearest = config.weight;
  nearest.rounding = Rounding::nearest_even;
  CHECK(bitwise_equal(effective_weight(layer), fake_quant_values(w, qp, nearest)));
  CHECK_FALSE(bitwise_equal(a, fake_quant_values(w, qp, nearest)));  // 200 000 weights: some rounded up
}

// ---------------------------------------------------------------- FakeQuant

TEST_CASE("fakequant: qparams follow the data during warm-up, then freeze, and eval before any data throws") {
  QatConfig config;
  FakeQuant fq(config.act, "minmax", 3);
  CHECK(fq.spec() == "fakequant(8)");
  CHECK_FALSE(fq.observed());
  fq.eval();
  CHECK_THROWS_WITH_AS(fq.forward(Variable(Tensor::ones({2}))), doctest::Contains("observed no data"),
                       std::logic_error);
  fq.train();
  std::vector<float> scales;
  for (float r : {1.f, 2.f, 4.f, 8.f, 16.f}) {
    fq.forward(Variable(Tensor::from({3}, {-r / 2, 0.f, r})));
    scales.push_back(fq.qparams().scale[0]);
  }
  CHECK(fq.frozen());
  CHECK(fq.steps() == 3);
  CHECK(scales[1] > scales[0]);
  CHECK(scales[2] > scales[1]);
  CHECK(scales[3] == scales[2]);  // frozen after the third pass
  CHECK(scales[4] == scales[2]);
  CHECK(scales[2] == doctest::Approx(6.0 / 255).epsilon(1e-6));  // range [-2, 4]
  // A frozen grid saturates: 16 lands on the range end.
  fq.eval();
  const Tensor y = fq.forward(Variable(Tensor::from({1}, {16.f}))).value();
  CHECK(y.data()[0] == doctest::Approx(4.0).epsilon(0.01));
  CHECK_THROWS_AS(FakeQuant(parse_quant_spec("axis=0"), "minmax", 1), std::invalid_argument);
  CHECK_THROWS_AS(FakeQuant(config.act, "nope", 1), std::invalid_argument);
}

TEST_CASE("fakequant: buffers saved mid-warm-up restore it exactly, for every observer") {
  QatConfig config;
  config.act.rounding = Rounding::stochastic;  // the generator's state must round-trip too
  for (const char* name : {"minmax", "ema", "percentile", "mse", "kl"}) {
    INFO(name);
    auto run = [&](FakeQuant& fq) {  // 3 more warm-up passes, then one in eval
      fq.train();
      for (uint64_t k = 0; k < 3; ++k) fq.forward(Variable(crayon::testing::normal({50}, 200 + k, 1.f + float(k))));
      fq.eval();
      return fq.forward(Variable(crayon::testing::normal({40}, 300, 3.f))).value();
    };
    FakeQuant fq(config.act, name, 4, Ste::plain, 17);
    for (uint64_t k = 0; k < 2; ++k) fq.forward(Variable(crayon::testing::normal({50}, 100 + k)));
    const NamedTensors saved = snapshot_buffers(fq);
    const Tensor first = run(fq);
    CHECK(fq.frozen());
    const QParams frozen = fq.qparams();

    restore_buffers(fq, saved);  // back to mid-warm-up
    CHECK_FALSE(fq.frozen());
    CHECK(fq.steps() == 2);
    CHECK(bitwise_equal(run(fq), first));

    FakeQuant fresh(config.act, name, 4, Ste::plain, 99);  // another seed: the buffers decide
    restore_buffers(fresh, saved);
    CHECK(bitwise_equal(run(fresh), first));
    CHECK(fresh.qparams().scale == frozen.scale);
    CHECK(fresh.qparams().zero_point == frozen.zero_point);
  }
}

TEST_CASE("qat: a model rebuilt from float_spec + prepare_qat and loaded with the state computes the same") {
  QatConfig config;
  config.warmup_steps = 4;
  auto model = model_for("lenet5", 10);
  prepare_qat(*model, config);
  model->train();
  NoGradGuard no_grad;
  for (uint64_t k = 0; k < 2; ++k) model->forward(Variable(crayon::testing::normal({2, 1, 28, 28}, 400 + k)));

  Rng rng(77);  // different initial weights, all overwritten
  auto rebuilt = build_model(float_spec(*model), kMnistShape, rng);
  prepare_qat(*rebuilt, parse_qat_config(describe(config)));
  copy_state(*model, *rebuilt);  // mid-warm-up

  for (Sequential* m : {model.get(), rebuilt.get()}) {
    m->train();
    for (uint64_t k = 0; k < 3; ++k) m->forward(Variable(crayon::testing::normal({2, 1, 28, 28}, 500 + k)));
    m->eval();
  }
  const Variable x(crayon::testing::normal({3, 1, 28, 28}, 600));
  CHECK(bitwise_equal(model->forward(x).value(), rebuilt->forward(x).value()));
  const auto a = activation_qparams(*model), b = activation_qparams(*rebuilt);
  REQUIRE(a.size() == 5);
  REQUIRE(b.size() == 5);
  for (size_t i = 0; i < a.size(); ++i) {
    CHECK(a[i].first == b[i].first);
    CHECK(a[i].second.scale == b[i].second.scale);
  }
  CHECK(a[0].first == "0");  // the input scale comes first
}

// ---------------------------------------------------------------- batch-norm folding

TEST_CASE("fold_batchnorm: folding BN into the conv or linear before it preserves the eval outputs") {
  Rng rng(12);
  auto model = build_model("conv(4,3,pad=1,bias=0)-bn-relu-conv(5,3)-bn-relu-flatten-linear(6)-bn-relu-linear(3)",
                           {2, 6, 6}, rng);
  // Non-trivial statistics and affine parameters.
  {
    NoGradGuard no_grad;
    model->train();
    for (uint64_t k = 0; k < 5; ++k) model->forward(Variable(crayon::testing::normal({8, 2, 6, 6}, 700 + k, 2.f)));
  }
  for (size_t i = 0; i < model->size(); ++i)
    if (auto* bn = dynamic_cast<BatchNorm*>(&(*model)[i])) {
      Tensor gamma = named_param(*bn, "weight"), beta = named_param(*bn, "bias");
      gamma.copy_from(crayon::testing::uniform(gamma.shape(), 800 + i, 0.5f, 2.f));
      beta.copy_from(crayon::testing::uniform(beta.shape(), 900 + i, -1.f, 1.f));
    }
  model->eval();
  const Variable x(crayon::testing::normal({4, 2, 6, 6}, 1000, 2.f));
  Tensor before;
  {
    NoGradGuard no_grad;
    before = model->forward(x).value().clone();
  }
  CHECK(fold_batchnorm(*model) == 3);
  CHECK(model->spec() == "conv(4,3,pad=1)-relu-conv(5,3)-relu-flatten-linear(6)-relu-linear(3)");
  CHECK_FALSE(model->is_training());
  NoGradGuard no_grad;
  const Tensor after = model->forward(x).value();
  double max_abs = 0;
  for (float v : before.values()) max_abs = std::max(max_abs, double(std::fabs(v)));
  check_close(after, before, 1e-4, Tensor::full(before.shape(), float(std::max(max_abs, 1e-3))), "folded output");
  CHECK(fold_batchnorm(*model) == 0);
}

// ---------------------------------------------------------------- end to end on MNIST

TEST_CASE("calibrate: every observer gives finite scales and an 8-bit PTQ mlp within 1 point of float on MNIST") {
  const auto t0 = std::chrono::steady_clock::now();
  auto float_model = model_for("mlp", 13);
  train(*float_model, 2, 0.05f);
  const double float_acc = accuracy(*float_model, mnist(false));
  MESSAGE("float mlp: " << float_acc << " % on 1000 test images");
  CHECK(float_acc > 85.0);

  for (const char* name : {"minmax", "ema", "percentile", "mse", "kl"}) {
    INFO(name);
    auto ptq = model_for("mlp", 13);
    copy_state(*float_model, *ptq);
    QatConfig config;
    config.observer = name;
    DataLoader loader(mnist(true), loader_options(true));
    calibrate(*ptq, loader.images(), 8, config);
    const auto qps = activation_qparams(*ptq);
    REQUIRE(qps.size() == 3);
    for (const auto& [fq_name, qp] : qps) {
      INFO(fq_name);
      CHECK(std::isfinite(qp.scale[0]));
      CHECK(qp.scale[0] > 0);
      CHECK(qp.scale[0] < 1);  // 255 steps over a range of a few units
    }
    for (const auto& [n, fq] : fake_quant_modules(*ptq)) CHECK(fq->frozen());
    const double acc = accuracy(*ptq, mnist(false));
    MESSAGE("PTQ int8 (" << std::string(name) << "): " << acc << " %");
    CHECK(std::fabs(acc - float_acc) <= 1.0);
  }
  int64_t none = 0;
  auto empty = model_for("mlp", 13);
  CHECK_THROWS_WITH_AS(calibrate(*empty, [&](Tensor&) { ++none; return false; }, 4, QatConfig{}),
                       doctest::Contains("no batch"), std::invalid_argument);
  MESSAGE("calibration test took " << seconds_since(t0) << " s");
}

// The test. One pair of runs (float, QAT) from the same initial weights and batches
// differs by up to ~0.7 points on 1000 test images, in either direction, because 8-bit
// rounding nudges the SGD trajectory (seeds 14..21 at this setting gave QAT - float =
// 0, -0.3, -0.2, -0.4, +0.2, -0.6, +0.7, +0.2). So the check is on the mean of three seeds,
// plus a looser bound on each pair. Two lessons from tuning it: without the learning-rate
// decay in train() single pairs differ by up to 2.7 points (the runs end mid-oscillation);
// and with a slow start (lr 0.02-0.03) QAT fell 5 to 40 points behind float, because the
// activations kept growing after the warm-up had frozen their ranges, so the frozen grids
// saturated. The warm-up must outlast the early growth of the activations.
TEST_CASE("qat: a short 8-bit QAT run of lenet5 on 3000 MNIST images lands within 0.5 points of float") {
  const auto t0 = std::chrono::steady_clock::now();
  double float_sum = 0, qat_sum = 0;
  const std::vector<uint64_t> seeds = {14, 15, 16};
  for (uint64_t seed : seeds) {
    auto float_model = model_for("lenet5", seed);
    train(*float_model, 2, 0.05f);
    const double float_acc = accuracy(*float_model, mnist(false));

    auto qat_model = model_for("lenet5", seed);  // the same initial weights and batches
    QatConfig config;
    config.warmup_steps = 47;  // one epoch of 3000 / 64 batches
    prepare_qat(*qat_model, config);
    train(*qat_model, 2, 0.05f);
    const double qat_acc = accuracy(*qat_model, mnist(false));
    for (const auto& [n, fq] : fake_quant_modules(*qat_model)) CHECK(fq->frozen());
    MESSAGE("lenet5 seed " << seed << ", 2 epochs on 3000 images: float " << float_acc << " %, int8 QAT " << qat_acc
                           << " %");
    CHECK(float_acc > 88.0);
    CHECK(std::fabs(qat_acc - float_acc) <= 1.5);
    float_sum += float_acc;
    qat_sum += qat_acc;
  }
  const double n = double(seeds.size());
  MESSAGE("mean of " << seeds.size() << " seeds: float " << float_sum / n << " %, int8 QAT " << qat_sum / n << " % ("
                     << seconds_since(t0) << " s)");
  CHECK(std::fabs(qat_sum / n - float_sum / n) <= 0.5);
}

// A fake-quant that did nothing would pass the accuracy tests above (8-bit QAT and PTQ are
// meant to land near float). At 2 bits it must change what the model computes: the same
// weights (float_copy) in float give other logits and other predictions, with the weight
// grid alone (W2A8) and with the activation grid alone (W8A2), while 8 bits barely moves
// them. Measured (lenet5, seed 14, one epoch, 1000 test images; mean |logit| 2.67): mean
// |delta logit| 2.21 and 38 % of predictions changed at W2A2, 2.07 and 36 % at W2A8, 0.46
// and 8.1 % at W8A2, 0.0099 and 0.1 % at W8A8.
TEST_CASE("qat: 2-bit fake-quant changes the logits of real MNIST images, 8-bit barely, against the float copy") {
  const auto t0 = std::chrono::steady_clock::now();
  auto float_model = model_for("lenet5", 14);
  train(*float_model, 1, 0.05f);
  const Tensor want = all_logits(*float_model, mnist(false));
  for (auto [wb, ab] : {std::pair{8, 8}, std::pair{2, 2}, std::pair{2, 8}, std::pair{8, 2}}) {
    INFO("W", wb, "A", ab);
    auto q = ptq_copy(*float_model, "lenet5", 14, wb, ab);
    auto f = float_copy(*q, kMnistShape);
    const Tensor f_logits = all_logits(*f, mnist(false));
    CHECK(bitwise_equal(f_logits, want));  // float_copy holds exactly the float weights
    const LogitChange c = logit_change(all_logits(*q, mnist(false)), f_logits);
    MESSAGE("W" << wb << "A" << ab << ": mean |delta logit| " << c.mean_abs_diff << " (mean |logit| " << c.mean_abs
                << "), predictions changed " << 100 * c.changed << " %");
    if (wb == 8 && ab == 8) {
      CHECK(c.mean_abs_diff < 0.02 * c.mean_abs);
      CHECK(c.changed <= 0.01);
    } else {
      CHECK(c.mean_abs_diff > (wb == 2 && ab == 2 ? 0.3 : 0.1) * c.mean_abs);
      CHECK(c.changed >= (wb == 2 && ab == 2 ? 0.15 : 0.03));
    }
  }
  MESSAGE("took " << seconds_since(t0) << " s");
}

// QAT must do what PTQ cannot: at W2A4, a float lenet5 (2 epochs on the 3000 images) loses
// 4.5 to 23 points to PTQ, and one epoch of QAT fine-tuning from that PTQ model wins them back.
// So that the extra epoch alone cannot explain it, PTQ is also applied to the float model
// trained for the same extra epoch (same batches, learning rate): with a no-op fake-quant
// QAT would be that very run, and lead by 0. Measured on 1000 test images (float, PTQ, PTQ after
// the extra float epoch, QAT):
//   seed 14: 91.0, 74.3, 72.4, 91.8   seed 15: 93.0, 88.5, 90.2, 92.9
//   seed 16: 91.3, 79.0, 71.7, 89.6   seed 17: 90.6, 79.9, 77.9, 90.5
//   seed 18: 92.8, 81.8, 79.6, 92.3   seed 19: 91.6, 71.6, 72.0, 88.7
//   seed 20: 92.4, 69.8, 75.9, 91.3   seed 21: 88.9, 75.0, 81.0, 86.3
// QAT's lead over the better PTQ: 2.7 to 17.5 points, mean 11.2 over the 8 seeds, 10.1
// over the two run here (the mean of any two consecutive seeds above is at least 6.6). The
// checks: QAT ahead on every seed, by at least 5 points on the mean, and QAT's mean within
// 2 points of float's. (At W3A3 the lead was only 0.4 to 1.7 points: 3 bits lose little to
// PTQ here, so W3A3 makes no robust test.)
TEST_CASE("qat: at W2A4 one epoch of QAT fine-tuning beats PTQ of the same float lenet5 on real MNIST") {
  const auto t0 = std::chrono::steady_clock::now();
  const std::vector<uint64_t> seeds = {14, 15};
  double float_sum = 0, qat_sum = 0, lead_sum = 0;
  for (uint64_t seed : seeds) {
    auto float_model = model_for("lenet5", seed);
    train(*float_model, 2, 0.05f);
    const double float_acc = accuracy(*float_model, mnist(false));
    auto longer = model_for("lenet5", seed);  // the float model, one more epoch at the QAT rate
    copy_state(*float_model, *longer);
    train(*longer, 1, 0.01f);
    const double ptq_acc = accuracy(*ptq_copy(*float_model, "lenet5", seed, 2, 4), mnist(false));
    const double ptq_longer_acc = accuracy(*ptq_copy(*longer, "lenet5", seed, 2, 4), mnist(false));
    auto qat = ptq_copy(*float_model, "lenet5", seed, 2, 4);  // QAT starts from the PTQ grids
    train(*qat, 1, 0.01f);
    const double qat_acc = accuracy(*qat, mnist(false));
    const double lead = qat_acc - std::max(ptq_acc, ptq_longer_acc);
    MESSAGE("seed " << seed << ": float " << float_acc << " %, W2A4 PTQ " << ptq_acc
                    << " %, PTQ after one more float epoch " << ptq_longer_acc << " %, QAT " << qat_acc << " %: lead "
                    << lead);
    CHECK(lead > 0);
    float_sum += float_acc;
    qat_sum += qat_acc;
    lead_sum += lead;
  }
  const double n = double(seeds.size());
  MESSAGE("mean: float " << float_sum / n << " %, QAT " << qat_sum / n << " %, lead over PTQ " << lead_sum / n
                         << " points (" << seconds_since(t0) << " s)");
  CHECK(lead_sum / n >= 5.0);
  CHECK(qat_sum / n >= float_sum / n - 2.0);
}

TEST_CASE("qat config and observer: errors quoting text with a newline stay on one line (found by fuzz_text)") {
  // tests/fuzz/corpus/fuzz_text/regression-newline: "\n" once gave a three-line message.
  auto one_line_error = [](auto&& f) {
    try {
      f();
    } catch (const std::invalid_argument& e) {
      return std::string(e.what()).find('\n') == std::string::npos;
    }
    return false;
  };
  CHECK(one_line_error([] { parse_qat_config("\n"); }));
  CHECK(one_line_error([] { parse_qat_config("weight_bits=\n8"); }));
  CHECK(one_line_error([] { parse_qat_config("observer=kl\n"); }));
  CHECK(one_line_error([] { make_observer("percentile:\n", QuantSpec{}); }));
}
