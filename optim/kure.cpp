#include "optim/kure.h"

#include <cmath>
#include <stdexcept>

#include "core/check.h"
#include "core/ops.h"

namespace crayon {

Variable kurtosis(const Variable& w) {
  if (w.numel() < 2) throw std::invalid_argument(str("kurtosis: expected at least 2 values, got ", w.numel()));
  const Variable d = w - mean(w);
  const Variable d2 = d * d;
  const Variable m2 = mean(d2);
  if (!(m2.item() > 0)) throw std::invalid_argument(str("kurtosis: the ", w.numel(), " values are all equal"));
  return mean(d2 * d2) / (m2 * m2);
}

Variable kure_penalty(const std::vector<Variable>& weights, float lambda, float target) {
  if (weights.empty()) throw std::invalid_argument("kure_penalty: no weight tensors");
  if (!std::isfinite(lambda) || lambda <= 0.f)
    throw std::invalid_argument(str("kure_penalty: lambda must be finite and > 0, got ", lambda));
  Variable total;
  for (const Variable& w : weights) {
    const Variable e = kurtosis(w) - target;
    total = total.defined() ? total + e * e : e * e;
  }
  return total * (lambda / float(weights.size()));
}

}  // namespace crayon
