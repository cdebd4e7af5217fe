#include "optim/grad_l1.h"

#include <cmath>
#include <stdexcept>

#include "core/check.h"

namespace crayon {

double add_gradient_l1(const std::vector<Variable>& params, const std::vector<Variable>& weights,
                       const GradL1Options& options, const std::function<void()>& recompute) {
  if (!std::isfinite(options.lambda) || options.lambda <= 0)
    throw std::invalid_argument(str("gradient L1: lambda must be finite and > 0, got ", options.lambda));
  if (!std::isfinite(options.step_ratio) || options.step_ratio <= 0)
    throw std::invalid_argument(str("gradient L1: step_ratio must be finite and > 0, got ", options.step_ratio));
  std::vector<Tensor> grads;  // every parameter's gradient from the caller's pass
  for (const Variable& p : params) grads.push_back(p.has_grad() ? p.grad().clone() : Tensor());
  std::vector<Tensor> original, sign;
  double penalty = 0, squares = 0;
  int64_t n = 0;
  for (const Variable& w : weights) {
    if (!w.has_grad()) throw std::invalid_argument("gradient L1: a weight has no gradient (run backward first)");
    original.push_back(w.value().clone());
    Tensor s = w.grad().clone();
    for (float& v : s.values()) {
      penalty += std::fabs(double(v));
      v = v > 0 ? 1.f : v < 0 ? -1.f : 0.f;
    }
    sign.push_back(s);
    for (float v : w.value().values()) squares += double(v) * double(v);
    n += w.numel();
  }
  const double h = options.step_ratio * std::max(std::sqrt(squares / double(std::max<int64_t>(n, 1))), 1e-6);

  // g(w + h v) and g(w - h v), with the weights set exactly each time.
  auto gradients_at = [&](double direction) {
    for (size_t i = 0; i < weights.size(); ++i) {
      Variable w = weights[i];
      float* d = w.value().data();
      const float* o = original[i].data();
      const float* s = sign[i].data();
      for (int64_t k = 0, m = w.numel(); k < m; ++k) d[k] = float(double(o[k]) + direction * h * double(s[k]));
    }
    recompute();
    std::vector<Tensor> g;
    for (const Variable& w : weights) {
      if (!w.has_grad()) throw std::invalid_argument("gradient L1: recompute left a weight without a gradient");
      g.push_back(w.grad().clone());
    }
    return g;
  };
  std::vector<Tensor> plus, minus;
  try {
    plus = gradients_at(+1);
    minus = gradients_at(-1);
  } catch (...) {
    for (size_t i = 0; i < weights.size(); ++i) Variable(weights[i]).value().copy_from(original[i]);
    throw;
  }
  for (size_t i = 0; i < weights.size(); ++i) Variable(weights[i]).value().copy_from(original[i]);

  // The caller's gradients back, plus lambda * H v on the weights.
  for (size_t i = 0; i < params.size(); ++i) {
    Variable p = params[i];
    p.zero_grad();
    if (grads[i].defined()) p.add_fresh_grad(grads[i]);
  }
  const double scale = options.lambda / (2 * h);
  for (size_t i = 0; i < weights.size(); ++i) {
    Tensor hv = plus[i];
    float* d = hv.data();
    const float* m = minus[i].data();
    for (int64_t k = 0, c = hv.numel(); k < c; ++k) d[k] = float(scale * (double(d[k]) - double(m[k])));
    Variable(weights[i]).add_grad(hv);
  }
  return options.lambda * penalty;
}

}  // namespace crayon
