#include "optim/clip.h"

#include <cmath>
#include <stdexcept>

#include "core/check.h"
#include "core/lane_sum.h"

namespace crayon {

float clip_grad_norm(const std::vector<Variable>& params, float max_norm) {
  if (std::isnan(max_norm) || max_norm < 0.f)
    throw std::invalid_argument(str("clip_grad_norm: max_norm must be >= 0, got ", max_norm));
  double sum_sq = 0.0;
  for (const Variable& p : params) {
    if (!p.has_grad()) continue;
    sum_sq += sum_squares(p.grad().values());
  }
  const double norm = std::sqrt(sum_sq);
  const double coef = double(max_norm) / (norm + 1e-6);
  if (std::isfinite(norm) && coef < 1.0) {
    const float c = float(coef);
    for (const Variable& p : params) {
      if (!p.has_grad()) continue;
      Tensor g = p.grad();  // a handle: scaling it scales the parameter's gradient
      for (float& x : g.values()) x *= c;
    }
  }
  return float(norm);
}

}  // namespace crayon
