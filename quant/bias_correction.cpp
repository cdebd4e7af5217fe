#include "quant/bias_correction.h"

#include <cmath>
#include <optional>
#include <numbers>
#include <stdexcept>

#include "core/check.h"
#include "core/ops.h"
#include "nn/activations.h"
#include "nn/batchnorm.h"
#include "nn/conv2d.h"
#include "nn/linear.h"
#include "quant/qat.h"

namespace crayon {

namespace {



// eps = W~ - W of a prepared layer, as read in eval mode (round to nearest-even).
Tensor weight_error(const Module& layer) {
  const Variable w = layer.find_parameter("weight");
  const WeightFakeQuant* fq = weight_fake_quant_of(layer);
  CRAYON_CHECK(fq != nullptr, "bias correction: layer ", layer.spec(), " has no weight fake-quant");
  Tensor e = (*fq)(w).value().clone();
  float* d = e.data();
  const float* v = w.value().data();
  for (int64_t i = 0, n = e.numel(); i < n; ++i) d[i] -= v[i];
  return e;
}

// Per output channel o of y, (B, O) or (B, O, H, W): sum[o] += the sum over batch and space;
// count += what it was summed over.
void accumulate_means(const Tensor& y, std::vector<double>& sum, int64_t& count) {
  const int64_t B = y.size(0), O = y.size(1), per = y.numel() / (B * O);
  const float* d = y.data();
  for (int64_t b = 0; b < B; ++b)
    for (int64_t o = 0; o < O; ++o) {
      double s = 0;
      for (int64_t j = 0; j < per; ++j) s += d[(b * O + o) * per + j];
      sum[size_t(o)] += s;
    }
  count += B * per;
}

// The layer's map with weight eps and no bias: conv2d(x, eps) or x eps^T.
Tensor apply_error(const Module& layer, const Tensor& eps, const Tensor& x) {
  if (const auto* conv = dynamic_cast<const Conv2d*>(&layer))
    return conv2d(Variable(x), Variable(eps), Variable(), conv->params()).value();
  return matmul(Variable(x), Variable(eps), false, true).value();
}

std::vector<Module*> weight_layers(Sequential& m) {
  std::vector<Module*> out;
  for (size_t i = 0; i < m.size(); ++i)
    if (is_weight_layer(m[i])) out.push_back(&m[i]);
  return out;
}

double mean_abs(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += std::fabs(x);
  return v.empty() ? 0.0 : s / double(v.size());
}

void subtract_from_bias(Module& layer, const std::vector<double>& shift) {
  Tensor b = layer.find_parameter("bias").value();
  for (size_t o = 0; o < shift.size(); ++o) b.data()[o] = float(double(b.data()[o]) - shift[o]);
}

// Walks the prepared model over the batches layer by layer (activations float). For each
// weight layer: with a reference, measures E[layer(x)] - E[reference layer(x)]; without,
// E[eps x], and with `correct` removes it from the bias before going on.
std::vector<LayerBiasShift> walk(Sequential& model, Sequential* reference, const std::vector<Tensor>& batches,
                                 bool correct) {
  if (!is_quantized(model))
    throw std::invalid_argument("bias correction: the model is not prepared for quantization (prepare_qat first)");
  if (batches.empty()) throw std::invalid_argument("bias correction: no calibration batches");
  std::vector<Module*> refs;
  if (reference) {
    refs = weight_layers(*reference);
    const std::vector<Module*> own = weight_layers(model);
    bool same = refs.size() == own.size();
    for (size_t k = 0; same && k < refs.size(); ++k) same = refs[k]->spec() == own[k]->spec();
    if (!same)
      throw std::invalid_argument(str("bias shift: the reference ", reference->spec(), " does not have the weight "
                                      "layers of ", model.spec()));
  }
  std::optional<TrainModeGuard> ref_mode;
  if (reference) ref_mode.emplace(*reference);
  if (reference) reference->eval();
  TrainModeGuard mode(model);
  model.eval();
  std::vector<LayerBiasShift> out;
  {
    NoGradGuard no_grad;
    std::vector<Tensor> acts = batches;
    for (size_t i = 0; i < model.size(); ++i) {
      Module& layer = model[i];
      if (dynamic_cast<const FakeQuant*>(&layer)) continue;  // float activations
      if (is_weight_layer(layer)) {
        const Tensor eps = reference ? Tensor() : weight_error(layer);
        Module* ref = reference ? refs[out.size()] : nullptr;
        const int64_t O = layer.find_parameter("weight").value().size(0);
        std::vector<double> sum(size_t(O), 0.0), ref_sum(size_t(O), 0.0);
        int64_t count = 0, ref_count = 0;
        for (const Tensor& x : acts) {
          if (ref) {
            accumulate_means(layer(Variable(x)).value(), sum, count);
            accumulate_means((*ref)(Variable(x)).value(), ref_sum, ref_count);
          } else {
            accumulate_means(apply_error(layer, eps, x), sum, count);
          }
        }
        for (size_t o = 0; o < sum.size(); ++o) sum[o] = sum[o] / double(count) - (ref ? ref_sum[o] / double(ref_count) : 0.0);
        LayerBiasShift r{i, false, mean_abs(sum)};
        if (correct && layer.find_parameter("bias").defined()) {
          subtract_from_bias(layer, sum);
          r.corrected = true;
        }
        out.push_back(r);
      }
      for (Tensor& x : acts) x = layer(Variable(x)).value();
    }
  }
  return out;
}

// E[relu(z)] for z ~ N(mu, sigma^2).
double relu_mean(double mu, double sigma) {
  if (sigma <= 0) return std::max(mu, 0.0);
  const double a = mu / sigma;
  const double pdf = std::exp(-0.5 * a * a) / std::sqrt(2 * std::numbers::pi);
  const double cdf = 0.5 * std::erfc(-a / std::numbers::sqrt2);
  return mu * cdf + sigma * pdf;
}

}  // namespace

std::vector<LayerBiasShift> measure_bias_shift(Sequential& model, Sequential& reference,
                                               const std::vector<Tensor>& batches) {
  return walk(model, &reference, batches, false);
}

std::vector<LayerBiasShift> correct_bias(Sequential& model, const std::vector<Tensor>& batches) {
  return walk(model, nullptr, batches, true);
}

std::vector<std::vector<double>> bn_input_means(const Sequential& model) {
  std::vector<std::vector<double>> out;
  for (size_t i = 0; i < model.size(); ++i) {
    if (!is_weight_layer(model[i])) continue;
    // Back from layer i over flatten / dropout and at most one ReLU or ReLU6 to a BN.
    size_t j = i;
    int activation = 0;  // 0 none, 1 relu, 2 relu6
    auto skip_identities = [&] {  // flatten and dropout (in eval) keep every mean
      while (j > 0 && (dynamic_cast<const Flatten*>(&model[j - 1]) || dynamic_cast<const Dropout*>(&model[j - 1]))) --j;
    };
    skip_identities();
    if (j > 0 && dynamic_cast<const ReLU*>(&model[j - 1])) activation = 1, --j;
    else if (j > 0 && dynamic_cast<const ReLU6*>(&model[j - 1])) activation = 2, --j;
    skip_identities();
    const auto* bn = j > 0 ? dynamic_cast<const BatchNorm*>(&model[j - 1]) : nullptr;
    std::vector<double> means;
    if (bn) {
      const Tensor gamma = bn->find_parameter("weight").value(), beta = bn->find_parameter("bias").value();
      std::vector<double> per_channel;
      for (int64_t c = 0; c < bn->channels(); ++c) {
        const double mu = beta.data()[c], sigma = std::fabs(double(gamma.data()[c]));
        per_channel.push_back(activation == 0   ? mu
                              : activation == 1 ? relu_mean(mu, sigma)
                                                : relu_mean(mu, sigma) - relu_mean(mu - 6, sigma));
      }
      const Tensor w = model[i].find_parameter("weight").value();
      const int64_t inputs = w.numel() / w.size(0);
      const int64_t C = bn->channels();
      // A conv reads C_in channels; a linear after a flatten reads each channel's H*W block.
      const int64_t n = dynamic_cast<const Conv2d*>(&model[i]) ? C : inputs;
      if (n % C == 0) {
        for (int64_t k = 0; k < n; ++k) means.push_back(per_channel[size_t(k / (n / C))]);
      }
    }
    out.push_back(means);
  }
  return out;
}

std::vector<LayerBiasShift> correct_bias_data_free(Sequential& model,
                                                   const std::vector<std::vector<double>>& input_means) {
  if (!is_quantized(model))
    throw std::invalid_argument("bias correction: the model is not prepared for quantization (prepare_qat first)");
  // Every check first, so that a mismatch leaves every bias as it was.
  std::vector<size_t> layers;
  for (size_t i = 0; i < model.size(); ++i)
    if (is_weight_layer(model[i])) layers.push_back(i);
  if (layers.size() != input_means.size())
    throw std::invalid_argument(str("data-free bias correction: ", input_means.size(), " input means for ",
                                    layers.size(), " weight layers"));
  auto inputs_of = [&](const Module& layer) {  // what the means are per: a conv's channels, a linear's features
    const Tensor w = layer.find_parameter("weight").value();
    const auto* conv = dynamic_cast<const Conv2d*>(&layer);
    return conv ? conv->in_channels() : w.numel() / w.size(0);
  };
  for (size_t k = 0; k < layers.size(); ++k)
    if (!input_means[k].empty() && int64_t(input_means[k].size()) != inputs_of(model[layers[k]]))
      throw std::invalid_argument(str("data-free bias correction: layer ", layers[k], " reads ",
                                      inputs_of(model[layers[k]]), " inputs, got ", input_means[k].size(), " means"));
  TrainModeGuard mode(model);
  model.eval();
  std::vector<LayerBiasShift> out;
  for (size_t k = 0; k < layers.size(); ++k) {
    Module& layer = model[layers[k]];
    const std::vector<double>& m = input_means[k];
    LayerBiasShift r{layers[k], false, 0.0};
    if (!m.empty() && layer.find_parameter("bias").defined()) {
      const Tensor eps = weight_error(layer);
      const int64_t O = eps.size(0), n = inputs_of(layer), per = eps.numel() / O / n;
      std::vector<double> shift(size_t(O), 0.0);
      for (int64_t o = 0; o < O; ++o)
        for (int64_t c = 0; c < n; ++c)
          for (int64_t j = 0; j < per; ++j) shift[size_t(o)] += double(eps.data()[(o * n + c) * per + j]) * m[size_t(c)];
      subtract_from_bias(layer, shift);
      r.corrected = true;
      r.mean_abs_shift = mean_abs(shift);
    }
    out.push_back(r);
  }
  return out;
}

}  // namespace crayon
