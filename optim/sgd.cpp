#include "optim/sgd.h"

#include <cmath>
#include <stdexcept>

#include "core/check.h"

namespace crayon {

SGD::SGD(std::vector<Variable> params, SgdOptions options)
    : Optimizer(std::move(params), options.lr), options_(options) {
  if (!std::isfinite(options.momentum) || options.momentum < 0.f)
    throw std::invalid_argument(str("SGD: momentum must be finite and >= 0, got ", options.momentum));
  if (!std::isfinite(options.weight_decay) || options.weight_decay < 0.f)
    throw std::invalid_argument(
        str("SGD: weight_decay must be finite and >= 0, got ", options.weight_decay));
  if (options.nesterov && options.momentum <= 0.f)
    throw std::invalid_argument("SGD: nesterov requires momentum > 0");
  if (options.momentum != 0.f) add_state_kind("momentum", &momentum_);
}

void SGD::update(size_t i, float* w, const float* g, int64_t n) {
  const float lr = this->lr(), mu = options_.momentum, wd = options_.weight_decay;
  if (mu == 0.f) {
    for (int64_t k = 0; k < n; ++k) w[k] -= lr * (g[k] + wd * w[k]);
    return;
  }
  const bool first = !momentum_[i].defined();
  float* b = buffer(momentum_, i).data();
  for (int64_t k = 0; k < n; ++k) {
    const float d = g[k] + wd * w[k];
    b[k] = first ? d : mu * b[k] + d;
    w[k] -= lr * (options_.nesterov ? d + mu * b[k] : b[k]);
  }
}

}  // namespace crayon
