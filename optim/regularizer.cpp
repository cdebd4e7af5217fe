#include "optim/regularizer.h"

#include <cmath>
#include <numbers>
#include <stdexcept>

#include "core/check.h"

namespace crayon {

namespace {

int64_t count_weights(const std::vector<Variable>& params) {
  int64_t n = 0;
  for (const Variable& p : params) n += p.numel();
  return n;
}

// grad = beta * grad + d(w) for every element of every parameter (beta = 0 for a gradient
// that did not exist yet), through the accumulation API so no temporary is allocated.
template <typename F>
void accumulate_gradient(const std::vector<Variable>& params, F d) {
  for (Variable p : params) {  // a handle: p shares the caller's node
    float beta = 0.f;
    float* g = p.grad_accumulator(&beta).data();
    const float* w = p.value().data();
    for (int64_t k = 0, n = p.numel(); k < n; ++k) g[k] = (beta == 0.f ? 0.f : g[k]) + d(w[k]);
  }
}

}  // namespace

Regularizer::Regularizer(const char* name, double lambda, double precision)
    : lambda_(lambda), precision_(precision) {
  if (!std::isfinite(lambda) || lambda <= 0.0)
    throw std::invalid_argument(str(name, ": lambda must be finite and > 0, got ", lambda));
  if (!std::isfinite(precision) || precision <= 0.0)
    throw std::invalid_argument(str(name, ": precision must be finite and > 0, got ", precision));
}

double Regularizer::log_prior(const std::vector<Variable>& params) const {
  return -(penalty(params) + double(count_weights(params)) * normalizer());
}

double Regularizer::model_bits(const std::vector<Variable>& params) const {
  const double n = double(count_weights(params));
  return (penalty(params) + n * (normalizer() - std::log(precision_))) / std::numbers::ln2;
}

// L2: -ln N(w; 0, sigma^2) = w^2 / (2 sigma^2) + 1/2 ln(2 pi sigma^2) = lambda w^2 + ...
double L2Regularizer::sigma() const { return std::sqrt(1.0 / (2.0 * lambda())); }
double L2Regularizer::normalizer() const {
  return 0.5 * std::log(2.0 * std::numbers::pi * sigma() * sigma());
}
double L2Regularizer::penalty(const std::vector<Variable>& params) const {
  double s = 0.0;
  for (const Variable& p : params)
    for (float w : p.value().values()) s += double(w) * double(w);
  return lambda() * s;
}
void L2Regularizer::add_gradient(const std::vector<Variable>& params) const {
  const float two_lambda = float(2.0 * lambda());
  accumulate_gradient(params, [=](float w) { return two_lambda * w; });
}

// L1: -ln Laplace(w; 0, b) = |w| / b + ln(2 b) = lambda |w| + ...
double L1Regularizer::normalizer() const { return std::log(2.0 * scale()); }
double L1Regularizer::penalty(const std::vector<Variable>& params) const {
  double s = 0.0;
  for (const Variable& p : params)
    for (float w : p.value().values()) s += std::fabs(double(w));
  return lambda() * s;
}
void L1Regularizer::add_gradient(const std::vector<Variable>& params) const {
  const float l = float(lambda());
  accumulate_gradient(params, [=](float w) { return w > 0.f ? l : w < 0.f ? -l : 0.f; });
}

double data_bits(double mean_cross_entropy_nats, int64_t n) {
  if (n < 0) throw std::invalid_argument(str("data_bits: n must be >= 0, got ", n));
  if (!(mean_cross_entropy_nats >= 0.0))
    throw std::invalid_argument(
        str("data_bits: mean cross-entropy must be >= 0 nats, got ", mean_cross_entropy_nats));
  return double(n) * mean_cross_entropy_nats / std::numbers::ln2;
}

}  // namespace crayon
