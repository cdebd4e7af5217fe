#include "optim/adam.h"

#include <cmath>
#include <stdexcept>

#include "core/check.h"

namespace crayon {

namespace {
void check_range(const char* name, float v, bool below_one) {
  if (!std::isfinite(v) || v < 0.f || (below_one && v >= 1.f))
    throw std::invalid_argument(
        str("Adam: ", name, " must be ", below_one ? "in [0, 1)" : "finite and >= 0", ", got ", v));
}
}  // namespace

Adam::Adam(std::vector<Variable> params, AdamOptions options)
    : Optimizer(std::move(params), options.lr), options_(options) {
  check_range("beta1", options.beta1, true);
  check_range("beta2", options.beta2, true);
  check_range("eps", options.eps, false);
  check_range("weight_decay", options.weight_decay, false);
  add_state_kind("exp_avg", &exp_avg_);
  add_state_kind("exp_avg_sq", &exp_avg_sq_);
}

void Adam::update(size_t i, float* w, const float* g, int64_t n) {
  const AdamOptions& o = options_;
  const float lr = this->lr();
  const double t = double(updates(i));
  const float bias_correction1 = float(1.0 - std::pow(double(o.beta1), t));
  const float bias_correction2_sqrt = float(std::sqrt(1.0 - std::pow(double(o.beta2), t)));
  const float step_size = lr / bias_correction1;
  const float l2 = o.decoupled_weight_decay ? 0.f : o.weight_decay;
  const float shrink = o.decoupled_weight_decay ? 1.f - lr * o.weight_decay : 1.f;

  float* m = buffer(exp_avg_, i).data();
  float* v = buffer(exp_avg_sq_, i).data();
  for (int64_t k = 0; k < n; ++k) {
    const float d = g[k] + l2 * w[k];
    m[k] = o.beta1 * m[k] + (1.f - o.beta1) * d;
    v[k] = o.beta2 * v[k] + (1.f - o.beta2) * d * d;
    const float denom = std::sqrt(v[k]) / bias_correction2_sqrt + o.eps;
    w[k] = w[k] * shrink - step_size * m[k] / denom;
  }
}

}  // namespace crayon
