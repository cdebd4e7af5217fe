#include "quant/mixed_precision.h"

#include <algorithm>
#include <limits>
#include <stdexcept>

#include "core/check.h"
#include "core/ops.h"
#include "quant/prediction_kl.h"
#include "quant/qat.h"

namespace crayon {

namespace {

Tensor logits_of(Sequential& model, const std::vector<Tensor>& batches) {
  NoGradGuard ng;
  std::vector<Tensor> parts;
  int64_t rows = 0;
  for (const Tensor& b : batches) {
    parts.push_back(model(Variable(b)).value().clone());
    rows += parts.back().size(0);
  }
  Tensor out = Tensor::empty({rows, parts[0].size(1)});
  int64_t at = 0;
  for (const Tensor& p : parts) {
    std::copy(p.data(), p.data() + p.numel(), out.data() + at);
    at += p.numel();
  }
  return out;
}

}  // namespace

std::vector<LayerSensitivity> weight_sensitivity(Sequential& model, const std::vector<Tensor>& batches,
                                                 const std::vector<int>& widths_in, const QuantSpec& spec) {
  if (is_quantized(model))
    throw std::invalid_argument("weight sensitivity: expected a float model, got one prepared for quantization");
  if (batches.empty()) throw std::invalid_argument("weight sensitivity: no calibration batches");
  std::vector<int> widths = widths_in;
  std::sort(widths.begin(), widths.end());
  widths.erase(std::unique(widths.begin(), widths.end()), widths.end());
  if (widths.empty() || widths.front() < 2 || widths.back() > 8)
    throw std::invalid_argument("weight sensitivity: expected widths in 2..8");
  const bool training = model.is_training();
  model.eval();
  std::vector<LayerSensitivity> out;
  try {
    const Tensor reference = logits_of(model, batches);
    for (size_t i = 0; i < model.size(); ++i) {
      Module& m = model[i];
      if (!is_weight_layer(m)) continue;
      LayerSensitivity s{i, m.find_parameter("weight").numel(), widths, {}};
      for (int b : widths) {
        QuantSpec q = spec;
        q.bits = b;
        m.set_parametrization("weight", weight_fake_quant(m, q, Ste::plain, 0));
        s.kl.push_back(prediction_shift(reference, logits_of(model, batches)).mean_kl);
        m.set_parametrization("weight", {});
      }
      out.push_back(s);
    }
  } catch (...) {
    for (size_t i = 0; i < model.size(); ++i)
      if (model[i].has_parametrization("weight")) model[i].set_parametrization("weight", {});
    model.train(training);
    throw;
  }
  model.train(training);
  return out;
}

BitsChoice choose_bits(const std::vector<LayerSensitivity>& layers, int64_t budget) {
  if (layers.empty()) throw std::invalid_argument("choose bits: no layers");
  BitsChoice c;
  std::vector<size_t> at(layers.size());  // index into widths
  int64_t smallest = 0;
  for (size_t l = 0; l < layers.size(); ++l) {
    at[l] = layers[l].widths.size() - 1;
    c.total_bits += layers[l].weights * layers[l].widths[at[l]];
    c.predicted_kl += layers[l].kl[at[l]];
    smallest += layers[l].weights * layers[l].widths.front();
  }
  if (smallest > budget)
    throw std::invalid_argument(str("choose bits: a budget of ", budget, " weight bits is below the ", smallest,
                                    " the narrowest widths need"));
  c.path.push_back({c.total_bits, c.predicted_kl});
  while (c.total_bits > budget) {
    size_t best = layers.size();
    double best_cost = std::numeric_limits<double>::infinity();
    for (size_t l = 0; l < layers.size(); ++l) {
      if (at[l] == 0) continue;
      const LayerSensitivity& s = layers[l];
      const double saved = double(s.weights) * double(s.widths[at[l]] - s.widths[at[l] - 1]);
      const double cost = (s.kl[at[l] - 1] - s.kl[at[l]]) / saved;
      if (cost < best_cost) best_cost = cost, best = l;
    }
    CRAYON_CHECK(best < layers.size(), "choose bits: no layer can step down");
    const LayerSensitivity& s = layers[best];
    c.total_bits -= s.weights * (s.widths[at[best]] - s.widths[at[best] - 1]);
    c.predicted_kl += s.kl[at[best] - 1] - s.kl[at[best]];
    --at[best];
    c.path.push_back({c.total_bits, c.predicted_kl});
  }
  // The last steps may overshoot (a big layer saves many bits at once): spend what is left
  // of the budget on the steps up that remove the most sensitivity per bit.
  for (;;) {
    size_t best = layers.size();
    double best_gain = 0;
    for (size_t l = 0; l < layers.size(); ++l) {
      const LayerSensitivity& s = layers[l];
      if (at[l] + 1 >= s.widths.size()) continue;
      const int64_t spent = s.weights * (s.widths[at[l] + 1] - s.widths[at[l]]);
      if (c.total_bits + spent > budget) continue;
      const double gain = (s.kl[at[l]] - s.kl[at[l] + 1]) / double(spent);
      if (gain > best_gain) best_gain = gain, best = l;
    }
    if (best == layers.size()) break;
    const LayerSensitivity& s = layers[best];
    c.total_bits += s.weights * (s.widths[at[best] + 1] - s.widths[at[best]]);
    c.predicted_kl += s.kl[at[best] + 1] - s.kl[at[best]];
    ++at[best];
    c.path.push_back({c.total_bits, c.predicted_kl});
  }
  for (size_t l = 0; l < layers.size(); ++l) c.bits.push_back(layers[l].widths[at[l]]);
  return c;
}

}  // namespace crayon
