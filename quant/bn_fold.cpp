#include "quant/bn_fold.h"

#include <cmath>
#include <memory>
#include <stdexcept>
#include <vector>

#include "core/check.h"
#include "nn/batchnorm.h"
#include "nn/conv2d.h"
#include "nn/linear.h"

namespace crayon {

namespace {

// The named parameter or buffer of a module (a handle sharing its storage).
Tensor param_value(const Module& m, const std::string& name) {
  for (const auto& [n, v] : m.named_parameters())
    if (n == name) return v.value();
  throw std::logic_error(str(m.spec(), " has no parameter ", name));
}

Tensor buffer_value(const Module& m, const std::string& name) {
  for (const auto& [n, t] : m.named_buffers())
    if (n == name) return t;
  throw std::logic_error(str(m.spec(), " has no buffer ", name));
}

bool has_bias(const Module& m) {
  for (const auto& [n, v] : m.named_parameters())
    if (n == "bias") return true;
  return false;
}

// Writes the folded weight and bias of `layer` followed by `bn` into `out` (same shapes,
// with a bias). Weight axis 0 is the output channel for both conv and linear.
void fold_into(const Module& layer, const BatchNorm& bn, Module& out) {
  const Tensor w = param_value(layer, "weight");
  const int64_t C = w.size(0), per = w.numel() / C;  // C_out, elements per output channel
  CRAYON_CHECK(bn.channels() == C, "bn has ", bn.channels(), " channels after a layer with ", C, " outputs");
  const Tensor gamma = param_value(bn, "weight"), beta = param_value(bn, "bias");
  const Tensor mu = buffer_value(bn, "running_mean"), var = buffer_value(bn, "running_var");
  const bool bias = has_bias(layer);
  const Tensor b = bias ? param_value(layer, "bias") : Tensor();
  Tensor w2 = param_value(out, "weight"), b2 = param_value(out, "bias");
  for (int64_t c = 0; c < C; ++c) {
    // k_c = gamma_c / sqrt(var_c + eps), in double
    const double k = double(gamma.data()[c]) / std::sqrt(double(var.data()[c]) + double(bn.eps()));
    for (int64_t i = 0; i < per; ++i) w2.data()[c * per + i] = float(k * double(w.data()[c * per + i]));
    const double bc = bias ? double(b.data()[c]) : 0.0;
    b2.data()[c] = float(double(beta.data()[c]) + (bc - double(mu.data()[c])) * k);
  }
}

}  // namespace

int fold_batchnorm(Sequential& model) {
  std::vector<std::shared_ptr<Module>> layers;
  int folded = 0;
  Rng rng(0);  // initial values of the new layers, all overwritten
  for (size_t i = 0; i < model.size(); ++i) {
    const std::shared_ptr<Module> m = model.at(i);
    const auto* bn = i + 1 < model.size() ? dynamic_cast<const BatchNorm*>(&model[i + 1]) : nullptr;
    std::shared_ptr<Module> out;
    if (bn) {
      if (const auto* conv = dynamic_cast<const Conv2d*>(m.get()))
        out = std::make_shared<Conv2d>(conv->in_channels(), conv->out_channels(), conv->kernel_h(), conv->kernel_w(),
                                       conv->params(), true, rng);
      else if (const auto* lin = dynamic_cast<const Linear*>(m.get()))
        out = std::make_shared<Linear>(lin->in_features(), lin->out_features(), true, rng);
    }
    if (!out) {
      layers.push_back(m);
      continue;
    }
    fold_into(*m, *bn, *out);
    layers.push_back(out);
    ++folded;
    ++i;  // the BN is gone
  }
  if (folded == 0) return 0;
  const bool training = model.is_training();
  model = Sequential(std::move(layers));
  model.train(training);
  return folded;
}

}  // namespace crayon
