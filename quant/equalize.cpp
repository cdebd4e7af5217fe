#include "quant/equalize.h"

#include <algorithm>
#include <cmath>
#include <memory>
#include <stdexcept>
#include <vector>

#include "core/check.h"
#include "nn/activations.h"
#include "nn/batchnorm.h"
#include "nn/conv2d.h"
#include "nn/linear.h"
#include "nn/pooling.h"
#include "quant/qat.h"

namespace crayon {

namespace {


// Layers f with f(s z) = s f(z) per channel for s > 0 (ReLU6 is handled by the caller).
bool commutes(const Module& m) {
  return dynamic_cast<const ReLU*>(&m) || dynamic_cast<const MaxPool2d*>(&m) || dynamic_cast<const AvgPool2d*>(&m) ||
         dynamic_cast<const Flatten*>(&m) || dynamic_cast<const Dropout*>(&m);
}


// One pair: layer `first`'s output channels feed layer `second`'s input channel blocks.
struct Pair {
  size_t first, second;
  Tensor w1, b1, w2;          // handles; b1 may be empty (no bias)
  int64_t channels, per1, k;  // W1 as (C, per1), W2 as (O, C, k)
};

// r2_c = max over o, j of |W2[o, c, j]|.
std::vector<double> input_ranges(const Pair& p) {
  std::vector<double> r(size_t(p.channels), 0.0);
  const float* w = p.w2.data();
  const int64_t outs = p.w2.size(0);
  for (int64_t o = 0; o < outs; ++o)
    for (int64_t c = 0; c < p.channels; ++c)
      for (int64_t j = 0; j < p.k; ++j)
        r[size_t(c)] = std::max(r[size_t(c)], double(std::fabs(w[(o * p.channels + c) * p.k + j])));
  return r;
}

double spread(const std::vector<double>& r) {
  double lo = INFINITY, hi = 0;
  for (double v : r)
    if (v > 0) lo = std::min(lo, v), hi = std::max(hi, v);
  return hi > 0 ? hi / lo : 1.0;
}

// One equalization of the pair; returns max_c |s_c - 1|.
double equalize_pair(Pair& p) {
  const std::vector<double> r2 = input_ranges(p);
  float* w1 = p.w1.data();
  float* w2 = p.w2.data();
  const int64_t outs = p.w2.size(0);
  double moved = 0;
  for (int64_t c = 0; c < p.channels; ++c) {
    double r1 = 0;
    for (int64_t j = 0; j < p.per1; ++j) r1 = std::max(r1, double(std::fabs(w1[c * p.per1 + j])));
    if (r1 == 0 || r2[size_t(c)] == 0) continue;
    const double s = std::sqrt(r1 / r2[size_t(c)]);
    moved = std::max(moved, std::fabs(s - 1));
    for (int64_t j = 0; j < p.per1; ++j) w1[c * p.per1 + j] = float(double(w1[c * p.per1 + j]) / s);
    if (p.b1.defined()) p.b1.data()[c] = float(double(p.b1.data()[c]) / s);
    for (int64_t o = 0; o < outs; ++o)
      for (int64_t j = 0; j < p.k; ++j) {
        float& v = w2[(o * p.channels + c) * p.k + j];
        v = float(double(v) * s);
      }
  }
  return moved;
}

double geometric_mean_spread(const std::vector<Pair>& pairs) {
  std::vector<const float*> seen;  // a layer may be in two pairs
  double log_sum = 0;
  for (const Pair& p : pairs)
    for (const Tensor* w : {&p.w1, &p.w2}) {
      if (std::find(seen.begin(), seen.end(), w->data()) != seen.end()) continue;
      seen.push_back(w->data());
      const int64_t C = w->size(0), per = w->numel() / C;
      std::vector<double> r(size_t(C), 0.0);
      for (int64_t c = 0; c < C; ++c)
        for (int64_t j = 0; j < per; ++j) r[size_t(c)] = std::max(r[size_t(c)], double(std::fabs(w->data()[c * per + j])));
      log_sum += std::log(spread(r));
    }
  return seen.empty() ? 0.0 : std::exp(log_sum / double(seen.size()));
}

}  // namespace

EqualizeReport equalize(Sequential& model, const EqualizeOptions& options) {
  if (is_quantized(model))
    throw std::invalid_argument(str("equalize: the model is prepared for quantization; equalize the float model "
                                    "before quantizing it: ", model.spec()));
  for (size_t i = 0; i < model.size(); ++i)
    if (dynamic_cast<const BatchNorm*>(&model[i]))
      throw std::invalid_argument(str("equalize: layer ", i, " is a batch norm; fold it first (quant/bn_fold.h): ",
                                      model.spec()));
  if (options.max_iterations < 1 || !(options.tolerance > 0))
    throw std::invalid_argument(str("equalize: expected max_iterations >= 1 and tolerance > 0, got ",
                                    options.max_iterations, " and ", options.tolerance));

  EqualizeReport report;
  std::vector<Pair> pairs;
  std::vector<size_t> relu6s;  // to replace
  for (size_t i = 0; i < model.size(); ++i) {
    if (!is_weight_layer(model[i])) continue;
    size_t j = i + 1;
    std::vector<size_t> between6;
    for (; j < model.size() && !is_weight_layer(model[j]); ++j) {
      if (dynamic_cast<const ReLU6*>(&model[j])) between6.push_back(j);
      else if (!commutes(model[j])) break;
    }
    if (j >= model.size() || !is_weight_layer(model[j])) continue;
    const Variable b1 = model[i].find_parameter("bias");
    Pair p{i, j, model[i].find_parameter("weight").value(), b1.defined() ? b1.value() : Tensor(),
           model[j].find_parameter("weight").value(), 0, 0, 0};
    p.channels = p.w1.size(0);
    p.per1 = p.w1.numel() / p.channels;
    const int64_t inputs = p.w2.numel() / p.w2.size(0);  // per output channel of the second layer
    if (const auto* conv = dynamic_cast<const Conv2d*>(&model[j])) {
      if (conv->in_channels() != p.channels) continue;
    } else if (inputs % p.channels != 0) {
      continue;
    }
    p.k = inputs / p.channels;
    if (!between6.empty() && options.relu6 == Relu6Policy::keep) {
      ++report.pairs_skipped;
      continue;
    }
    relu6s.insert(relu6s.end(), between6.begin(), between6.end());
    pairs.push_back(p);
  }

  if (!relu6s.empty()) {
    std::vector<std::shared_ptr<Module>> layers;
    for (size_t i = 0; i < model.size(); ++i)
      layers.push_back(std::find(relu6s.begin(), relu6s.end(), i) != relu6s.end() ? std::make_shared<ReLU>()
                                                                                    : model.at(i));
    const bool training = model.is_training();
    model = Sequential(std::move(layers));
    model.train(training);
    report.relu6_replaced = int(relu6s.size());
  }

  report.pairs = int(pairs.size());
  report.spread_before = geometric_mean_spread(pairs);
  if (pairs.empty()) return report;
  for (int it = 0; it < options.max_iterations; ++it) {
    double moved = 0;
    for (Pair& p : pairs) moved = std::max(moved, equalize_pair(p));
    report.iterations = it + 1;
    if (moved < options.tolerance) break;
  }
  report.spread_after = geometric_mean_spread(pairs);
  return report;
}

}  // namespace crayon
