// The PTQ pipeline beyond plain calibration: cross-layer equalization (quant/equalize.h),
// bias correction (quant/bias_correction.h) and AdaRound (quant/adaround.h). Exact properties: equalization leaves
// the float function unchanged and evens out the ranges it claims to; empirical bias
// correction removes the mean output shift it measures; the data-free correction predicts
// the shift the empirical one measures when the data is what the batch norm says it is.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <memory>
#include <stdexcept>
#include <vector>

#include "core/check.h"
#include "core/ops.h"
#include "nn/activations.h"
#include "nn/batchnorm.h"
#include "nn/conv2d.h"
#include "nn/linear.h"
#include "nn/spec.h"
#include "optim/adam.h"
#include "quant/adaround.h"
#include "quant/bias_correction.h"
#include "quant/equalize.h"
#include "quant/mixed_precision.h"
#include "quant/qat.h"
#include "tests/support/tensors.h"

using namespace crayon;
using crayon::testing::bitwise_equal;
using crayon::testing::check_close;

namespace {

Tensor weight_of(const Module& m) {
  for (const auto& [n, v] : m.named_parameters())
    if (n == "weight") return v.value();
  FAIL("no weight");
  return {};
}

// Multiplies output channel c of every weight layer by a factor in [1/8, 8] (and its bias
// with it), so that channel ranges differ widely, as in trained networks.
void spread_channels(Sequential& model, uint64_t seed) {
  Rng rng(seed);
  for (size_t i = 0; i < model.size(); ++i) {
    if (!dynamic_cast<Conv2d*>(&model[i]) && !dynamic_cast<Linear*>(&model[i])) continue;
    Tensor w = weight_of(model[i]);
    const int64_t C = w.size(0), per = w.numel() / C;
    for (int64_t c = 0; c < C; ++c) {
      const float f = std::exp2(rng.uniform(-3.f, 3.f));
      for (int64_t j = 0; j < per; ++j) w.data()[c * per + j] *= f;
    }
  }
}

Tensor logits(Sequential& model, const Tensor& x) {
  NoGradGuard ng;
  model.eval();
  return model(Variable(x)).value().clone();
}

// max |W[c, ...]| per output channel, and max |W[:, c, ...]| per input channel block.
std::vector<double> out_ranges(const Tensor& w) {
  const int64_t C = w.size(0), per = w.numel() / C;
  std::vector<double> r(size_t(C), 0.0);
  for (int64_t c = 0; c < C; ++c)
    for (int64_t j = 0; j < per; ++j) r[size_t(c)] = std::max(r[size_t(c)], double(std::fabs(w.data()[c * per + j])));
  return r;
}
std::vector<double> in_ranges(const Tensor& w, int64_t channels) {
  const int64_t O = w.size(0), k = w.numel() / (O * channels);
  std::vector<double> r(size_t(channels), 0.0);
  for (int64_t o = 0; o < O; ++o)
    for (int64_t c = 0; c < channels; ++c)
      for (int64_t j = 0; j < k; ++j)
        r[size_t(c)] = std::max(r[size_t(c)], double(std::fabs(w.data()[(o * channels + c) * k + j])));
  return r;
}

// Every parameter of `from` into the same-shaped model `to`.
void copy_parameters(const Sequential& from, Sequential& to) {
  const auto src = from.named_parameters();
  auto dst = to.named_parameters();
  REQUIRE(src.size() == dst.size());
  for (size_t j = 0; j < src.size(); ++j) dst[j].second.value().copy_from(src[j].second.value());
}

const char* kReluNet = "conv(6,3,pad=1)-relu-maxpool(2)-conv(8,3)-relu-flatten-linear(20)-relu-dropout(0.5)-linear(5)";

}  // namespace

// ---------------------------------------------------------------- equalization

TEST_CASE("equalize: ReLU pairs through maxpool and flatten keep the float logits and even out the ranges") {
  Rng rng(1);
  auto model = build_model(kReluNet, {2, 10, 10}, rng);
  spread_channels(*model, 2);
  const Tensor x = crayon::testing::normal({4, 2, 10, 10}, 3);
  const Tensor before = logits(*model, x);

  const EqualizeReport r = equalize(*model);
  CHECK(r.pairs == 3);
  CHECK(r.relu6_replaced == 0);
  CHECK(r.pairs_skipped == 0);
  CHECK(r.iterations >= 2);
  CHECK(r.spread_after < r.spread_before);
  CHECK(model->spec() == build_model(kReluNet, {2, 10, 10}, rng)->spec());
  // The function is unchanged (a positive per-channel scale commutes with ReLU and max).
  check_close(logits(*model, x), before, 2e-5, {}, "logits after equalization");
  // Each pair's ranges meet: output channel c of the first layer and input block c of the
  // second have (nearly, after convergence) the same range.
  const size_t layers[] = {0, 3, 6, 9};
  for (int p = 0; p < 3; ++p) {
    INFO("pair ", p);
    const Tensor w1 = weight_of((*model)[layers[p]]), w2 = weight_of((*model)[layers[p + 1]]);
    const std::vector<double> r1 = out_ranges(w1), r2 = in_ranges(w2, w1.size(0));
    for (size_t c = 0; c < r1.size(); ++c) CHECK(r1[c] == doctest::Approx(r2[c]).epsilon(2e-3));
  }
}

TEST_CASE("equalize: ReLU6 is replaced by ReLU or its pairs are kept, and a BN or a prepared model is refused") {
  const char* spec6 = "conv(4,3)-relu6-conv(5,3)-relu-flatten-linear(3)";
  const char* spec_relu = "conv(4,3)-relu-conv(5,3)-relu-flatten-linear(3)";
  const Tensor x = crayon::testing::normal({3, 1, 9, 9}, 4);
  {
    Rng rng(5);
    auto model = build_model(spec6, {1, 9, 9}, rng);
    spread_channels(*model, 6);
    const Tensor before = logits(*model, x);
    const Tensor w0 = weight_of((*model)[0]).clone();
    const EqualizeReport r = equalize(*model, {.relu6 = Relu6Policy::keep});
    CHECK(r.pairs == 1);
    CHECK(r.pairs_skipped == 1);
    CHECK(model->spec() == build_model(spec6, {1, 9, 9}, rng)->spec());
    CHECK(bitwise_equal(weight_of((*model)[0]), w0));  // the ReLU6 pair is untouched
    check_close(logits(*model, x), before, 2e-5, {}, "logits with ReLU6 kept");
  }
  {
    // Replaced: the result computes what the same weights compute with ReLU in its place.
    Rng a(5), b(5);
    auto model = build_model(spec6, {1, 9, 9}, a);
    auto relu_model = build_model(spec_relu, {1, 9, 9}, b);
    spread_channels(*model, 6);
    spread_channels(*relu_model, 6);
    const Tensor want = logits(*relu_model, x);
    const EqualizeReport r = equalize(*model);
    CHECK(r.pairs == 2);
    CHECK(r.relu6_replaced == 1);
    CHECK(model->spec() == relu_model->spec());
    check_close(logits(*model, x), want, 2e-5, {}, "logits with ReLU6 replaced");
  }
  Rng rng(7);
  auto bn = build_model("conv(4,3,bias=0)-bn-relu-conv(2,3)", {1, 8, 8}, rng);
  CHECK_THROWS_WITH_AS(equalize(*bn), doctest::Contains("fold it first"), std::invalid_argument);
  auto prepared = build_model(spec_relu, {1, 9, 9}, rng);
  prepare_qat(*prepared, QatConfig{});
  CHECK_THROWS_WITH_AS(equalize(*prepared), doctest::Contains("prepared for quantization"), std::invalid_argument);
}

// ---------------------------------------------------------------- bias correction

TEST_CASE("bias correction: the measured mean output shift of every layer is gone after it") {
  Rng rng(8);
  auto model = build_model("conv(6,3,pad=1)-relu-maxpool(2)-conv(8,3,bias=0)-relu-flatten-linear(10)", {1, 10, 10}, rng);
  QatConfig q;
  q.weight.bits = 3;
  prepare_qat(*model, q);
  std::vector<Tensor> batches;
  for (uint64_t s = 0; s < 3; ++s) batches.push_back(crayon::testing::normal({16, 1, 10, 10}, 10 + s));

  // The float model as it was: what the shift is measured against.
  const std::shared_ptr<Sequential> reference = float_copy(*model, {1, 10, 10});
  const std::vector<LayerBiasShift> before = measure_bias_shift(*model, *reference, batches);
  REQUIRE(before.size() == 3);
  for (const LayerBiasShift& l : before) CHECK(l.mean_abs_shift > 1e-4);  // 3-bit weights move the means

  const std::vector<LayerBiasShift> removed = correct_bias(*model, batches);
  REQUIRE(removed.size() == 3);
  CHECK(removed[0].corrected);
  CHECK_FALSE(removed[1].corrected);  // no bias to correct
  CHECK(removed[2].corrected);
  CHECK(removed[0].mean_abs_shift == doctest::Approx(before[0].mean_abs_shift));

  // Each corrected layer's mean output now equals the float layer's on the same inputs, to
  // float rounding (a wrong sign would double the shift; a missing one would keep it).
  const std::vector<LayerBiasShift> after = measure_bias_shift(*model, *reference, batches);
  CHECK(after[0].mean_abs_shift < 1e-3 * before[0].mean_abs_shift);
  CHECK(after[1].mean_abs_shift > 1e-4);  // left alone
  CHECK(after[2].mean_abs_shift < 1e-3 * before[2].mean_abs_shift);
  // The model still works as a quantized model: calibrate and evaluate.
  size_t next = 0;
  calibrate(*model, [&](Tensor& b) { return next < batches.size() ? (b = batches[next++], true) : false; }, 3, q);
  CHECK(logits(*model, batches[0]).size(1) == 10);

  Rng r2(9);
  auto plain = build_model("flatten-linear(3)", {1, 10, 10}, r2);
  CHECK_THROWS_WITH_AS(correct_bias(*plain, batches), doctest::Contains("not prepared"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(measure_bias_shift(*model, *plain, batches), doctest::Contains("does not have the weight layers"),
                       std::invalid_argument);
}

TEST_CASE("bias correction: data-free through a flatten maps each BN channel to its block of linear inputs") {
  Rng rng(16);
  const char* spec = "bn-relu-flatten-linear(4)";
  auto model = build_model(spec, {3, 2, 2}, rng);
  for (const auto& [n, v] : (*model)[0].named_parameters()) {
    Tensor t = v.value();
    for (int c = 0; c < 3; ++c) t.data()[c] = n == "weight" ? 0.5f + float(c) : float(c) - 1.f;
  }
  const std::vector<std::vector<double>> means = bn_input_means(*model);
  REQUIRE(means.size() == 1);
  REQUIRE(means[0].size() == 12);  // 3 channels x 2 x 2 positions, channel-major as flatten lays them out
  for (int k = 0; k < 12; ++k) {
    const int c = k / 4;
    const double mu = double(c) - 1, sigma = 0.5 + double(c);
    const double a = mu / sigma;
    const double want = mu * 0.5 * std::erfc(-a / std::sqrt(2.0)) + sigma * std::exp(-0.5 * a * a) / std::sqrt(2 * M_PI);
    CHECK(means[0][size_t(k)] == doctest::Approx(want).epsilon(1e-9));
  }
  QatConfig q;
  q.weight.bits = 3;
  q.fold_bn = false;
  auto measured = build_model(spec, {3, 2, 2}, rng);
  copy_parameters(*model, *measured);
  prepare_qat(*model, q);
  prepare_qat(*measured, q);
  std::vector<Tensor> batches;
  for (uint64_t s = 0; s < 8; ++s) batches.push_back(crayon::testing::normal({4096, 3, 2, 2}, 50 + s));
  const std::vector<LayerBiasShift> predicted = correct_bias_data_free(*model, means);
  correct_bias(*measured, batches);
  REQUIRE(predicted[0].corrected);
  auto bias = [](const Sequential& m) {
    for (size_t i = 0; i < m.size(); ++i)
      if (dynamic_cast<const Linear*>(&m[i])) return m[i].find_parameter("bias").value();
    FAIL("no linear");
    return Tensor();
  };
  check_close(bias(*model), bias(*measured), 0.05 * predicted[0].mean_abs_shift, Tensor::ones({4}), "corrected biases");
}

TEST_CASE("bias correction: the data-free shift from BN statistics matches the one measured on BN-shaped data") {
  // bn-relu6-conv and bn-relu-conv: inputs N(0, 1) give BN outputs N(beta, gamma^2) exactly
  // (running mean 0, variance 1), which is what the data-free model of the input assumes.
  for (const char* act : {"relu", "relu6", "dropout(0.5)"}) {
    INFO(act);
    Rng rng(11);
    auto model = build_model(str("bn-", act, "-conv(5,3)-flatten-linear(4)"), {3, 6, 6}, rng);
    auto& bn = dynamic_cast<BatchNorm&>((*model)[0]);
    for (const auto& [n, v] : bn.named_parameters()) {
      Tensor t = v.value();
      const float vals[] = {n == "weight" ? 1.5f : 0.5f, n == "weight" ? 2.f : -1.f, n == "weight" ? 4.f : 3.f};
      for (int c = 0; c < 3; ++c) t.data()[c] = vals[c];
    }
    const std::vector<std::vector<double>> means = bn_input_means(*model);
    REQUIRE(means.size() == 2);
    REQUIRE(means[0].size() == 3);
    CHECK(means[1].empty());  // the linear reads a conv's output, not a BN's
    if (std::string(act) == "relu") {
      // E[relu(z)], z ~ N(0.5, 1.5^2): 0.5 Phi(1/3) + 1.5 phi(1/3)
      CHECK(means[0][0] == doctest::Approx(0.5 * 0.6305586 + 1.5 * 0.3773832).epsilon(1e-6));
    }

    QatConfig q;
    q.weight.bits = 3;
    q.fold_bn = false;  // the BN stays, producing the data
    auto measured = build_model(str("bn-", act, "-conv(5,3)-flatten-linear(4)"), {3, 6, 6}, rng);
    copy_parameters(*model, *measured);  // same values in both
    prepare_qat(*model, q);
    prepare_qat(*measured, q);
    std::vector<Tensor> batches;
    for (uint64_t s = 0; s < 8; ++s) batches.push_back(crayon::testing::normal({512, 3, 6, 6}, 20 + s));
    const std::vector<LayerBiasShift> predicted = correct_bias_data_free(*model, means);
    const std::vector<LayerBiasShift> empirical = correct_bias(*measured, batches);
    CHECK(predicted[0].corrected);
    CHECK_FALSE(predicted[1].corrected);
    CHECK(predicted[0].mean_abs_shift > 1e-3);
    // Both corrected the conv's bias to nearly the same values (Monte Carlo error only).
    auto conv_bias = [](const Sequential& m) {
      for (size_t i = 0; i < m.size(); ++i)
        if (dynamic_cast<const Conv2d*>(&m[i])) return m[i].named_parameters().at(1).second.value();
      FAIL("no conv");
      return Tensor();
    };
    const Tensor b_pred = conv_bias(*model), b_meas = conv_bias(*measured);
    check_close(b_pred, b_meas, 0.05 * predicted[0].mean_abs_shift, Tensor::ones(b_meas.shape()), "corrected biases");
    CHECK_THROWS_WITH_AS(correct_bias_data_free(*model, {means[0]}), doctest::Contains("input means"),
                         std::invalid_argument);
  }
}

// ---------------------------------------------------------------- AdaRound

TEST_CASE("adaround: never worse than nearest on its objective and much better on most layers with the grid kept exactly") {
  Rng rng(12);
  auto model = build_model("conv(6,3,pad=1)-relu-maxpool(2)-conv(8,3)-relu6-flatten-linear(10)", {1, 10, 10}, rng);
  QatConfig q;
  q.weight.bits = 3;
  prepare_qat(*model, q);
  std::vector<Tensor> batches;
  for (uint64_t s = 0; s < 4; ++s) batches.push_back(crayon::testing::normal({32, 1, 10, 10}, 30 + s));
  std::vector<QParams> grids;
  std::vector<Tensor> before;
  for (size_t i = 0; i < model->size(); ++i)
    if (const WeightFakeQuant* fq = weight_fake_quant_of((*model)[i])) {
      before.push_back(weight_of((*model)[i]).clone());
      grids.push_back(weight_qparams(before.back(), fq->spec));
    }
  const auto adam = [](const std::vector<Variable>& v) {
    auto a = std::make_shared<Adam>(v, AdamOptions{.lr = 1e-2f});
    return std::function<void()>([a] { a->step(); });
  };
  const std::vector<AdaRoundLayer> r = adaround(*model, batches, adam, {.iterations = 1000, .batch = 16});
  REQUIRE(r.size() == 3);
  size_t k = 0;
  int better = 0;
  for (size_t i = 0; i < model->size(); ++i) {
    const WeightFakeQuant* fq = weight_fake_quant_of((*model)[i]);
    if (!fq) continue;
    INFO("layer ", i);
    const AdaRoundLayer& l = r[k];
    CHECK(l.layer == i);
    CHECK(l.adaround_loss <= l.nearest_loss);
    const Tensor w = weight_of((*model)[i]);
    if (l.kept_nearest) {  // the float weights are left as they were
      CHECK(bitwise_equal(w, before[k]));
      CHECK(l.changed == 0);
      ++k;
      continue;
    }
    better += l.adaround_loss < 0.9 * l.nearest_loss;
    if (l.adaround_loss < l.nearest_loss) CHECK(l.changed > 0.01);
    // The grid is exactly the one the float weights had, and the weights read back as its points.
    const QParams now = weight_qparams(w, fq->spec);
    CHECK(now.scale == grids[k].scale);
    CHECK(now.zero_point == grids[k].zero_point);
    (*model)[i].eval();
    // Fake-quant reads each weight back one step from its float value at most (rounded down
    // or up, never further), and the codes that differ from nearest rounding's are the
    // fraction reported.
    const Tensor read = (*fq)(Variable(w)).value();
    const Tensor nearest = (*fq)(Variable(before[k])).value();
    const int64_t per = w.numel() / w.size(0);
    int64_t differ = 0;
    for (int64_t e = 0; e < w.numel(); ++e) {
      const float step = grids[k].scale[size_t(e / per)];
      CHECK(std::fabs(read.data()[e] - before[k].data()[e]) < step * (1 + 1e-5f));
      differ += std::fabs(read.data()[e] - nearest.data()[e]) > 0.5f * step;
    }
    CHECK(double(differ) / double(w.numel()) == doctest::Approx(l.changed));
    ++k;
  }
  // On this net's first layer (9 weights a channel, two of them pinned as the channel's
  // extremes) the annealed regularizer wins over a small reconstruction term and the codes
  // end where nearest puts them; the other two layers gain.
  CHECK(better >= 2);
  Rng r2(13);
  auto plain = build_model("flatten-linear(3)", {1, 10, 10}, r2);
  CHECK_THROWS_WITH_AS(adaround(*plain, batches, adam), doctest::Contains("not prepared"), std::invalid_argument);
}

// ---------------------------------------------------------------- mixed precision

TEST_CASE("mixed precision: the greedy choice meets its budget exactly and spends bits where they pay") {
  // Layer 0: 100 weights, insensitive; layer 1: 10 weights, sensitive.
  const std::vector<LayerSensitivity> layers = {{0, 100, {2, 4, 8}, {0.5, 0.01, 0.0}},
                                                {3, 10, {2, 4, 8}, {5.0, 1.0, 0.0}}};
  const BitsChoice all8 = choose_bits(layers, 100 * 8 + 10 * 8);
  CHECK(all8.bits == std::vector<int>{8, 8});
  CHECK(all8.path.size() == 1);
  // 600 bits: the big insensitive layer steps down first (8 -> 4 saves 400 bits for 0.01).
  const BitsChoice b600 = choose_bits(layers, 600);
  CHECK(b600.bits == std::vector<int>{4, 8});
  CHECK(b600.total_bits == 480);
  CHECK(b600.predicted_kl == doctest::Approx(0.01));
  for (int64_t budget = 240; budget <= 880; budget += 7) {
    INFO("budget ", budget);
    const BitsChoice c = choose_bits(layers, budget);
    CHECK(c.total_bits <= budget);
    CHECK(c.total_bits == 100 * c.bits[0] + 10 * c.bits[1]);
    CHECK(c.path.back().total_bits == c.total_bits);
    // No single step up of either layer would have fit: the budget is used.
    for (size_t l = 0; l < 2; ++l) {
      const auto& w = layers[l].widths;
      const size_t at = size_t(std::find(w.begin(), w.end(), c.bits[l]) - w.begin());
      if (at + 1 < w.size()) CHECK(c.total_bits + layers[l].weights * (w[at + 1] - w[at]) > budget);
    }
  }
  CHECK_THROWS_WITH_AS(choose_bits(layers, 219), doctest::Contains("below the 220"), std::invalid_argument);
}

TEST_CASE("mixed precision: sensitivities grow as widths shrink and the bits per layer reach the checkpoint's grids") {
  Rng rng(14);
  auto model = build_model("conv(4,3)-relu-flatten-linear(16)-relu-linear(5)", {1, 8, 8}, rng);
  std::vector<Tensor> batches{crayon::testing::normal({64, 1, 8, 8}, 40)};
  const std::vector<LayerSensitivity> s = weight_sensitivity(*model, batches, {8, 4, 2}, QatConfig{}.weight);
  REQUIRE(s.size() == 3);
  for (const LayerSensitivity& l : s) {
    CHECK(l.widths == std::vector<int>{2, 4, 8});
    CHECK(l.kl[0] > l.kl[1]);
    CHECK(l.kl[1] > l.kl[2]);
    CHECK(l.kl[2] >= 0);
  }
  CHECK_FALSE(is_quantized(*model));  // the probes are gone

  QatConfig q = parse_qat_config("layer_weight_bits=2:8:3");
  CHECK(q.layer_weight_bits == std::vector<int>{2, 8, 3});
  CHECK(parse_qat_config(describe(q)).layer_weight_bits == q.layer_weight_bits);
  prepare_qat(*model, q);
  const int want[] = {2, 8, 3};
  int k = 0;
  for (size_t i = 0; i < model->size(); ++i)
    if (const WeightFakeQuant* fq = weight_fake_quant_of((*model)[i])) {
      CHECK(fq->spec.bits == want[k]);
      // At most 2^(b-1) - 1 levels each side (narrow, symmetric): the codes fit b bits.
      (*model)[i].eval();
      const Tensor w = (*fq)(Variable(weight_of((*model)[i]))).value();
      const QParams g = weight_qparams(weight_of((*model)[i]), fq->spec);
      const int64_t per = w.numel() / w.size(0);
      for (int64_t e = 0; e < w.numel(); ++e)
        CHECK(std::fabs(std::nearbyint(w.data()[e] / g.scale[size_t(e / per)])) <= (1 << (want[k] - 1)) - 1);
      ++k;
    }
  CHECK(k == 3);
  Rng r2(15);
  auto other = build_model("flatten-linear(5)", {1, 8, 8}, r2);
  CHECK_THROWS_WITH_AS(prepare_qat(*other, q), doctest::Contains("layer_weight_bits has 3 widths"),
                       std::invalid_argument);
  CHECK_THROWS_AS(parse_qat_config("layer_weight_bits=8:9"), std::invalid_argument);
  CHECK_THROWS_AS(parse_qat_config("layer_weight_bits="), std::invalid_argument);
  CHECK_THROWS_AS(parse_qat_config("layer_weight_bits=8:4:"), std::invalid_argument);
}
