#include "quant/prediction_kl.h"

#include <cmath>
#include <stdexcept>

#include "core/check.h"

namespace crayon {

namespace {

// log softmax of one row, in float64.
void log_softmax(const float* z, int64_t n, std::vector<double>& out) {
  double m = z[0];
  for (int64_t c = 1; c < n; ++c) m = std::max(m, double(z[c]));
  double sum = 0;
  for (int64_t c = 0; c < n; ++c) sum += std::exp(double(z[c]) - m);
  const double log_sum = m + std::log(sum);
  for (int64_t c = 0; c < n; ++c) out[size_t(c)] = double(z[c]) - log_sum;
}

int64_t argmax(const float* z, int64_t n) {
  int64_t best = 0;
  for (int64_t c = 1; c < n; ++c)
    if (z[c] > z[best]) best = c;
  return best;
}

}  // namespace

PredictionShift prediction_shift(const Tensor& reference, const Tensor& quantized) {
  if (reference.ndim() != 2 || reference.shape() != quantized.shape() || reference.numel() == 0 ||
      reference.dtype() != DType::f32 || quantized.dtype() != DType::f32)
    throw std::invalid_argument(str("prediction_shift: expected two float (N, C) logits of one shape, got ",
                                    shape_str(reference.shape()), " and ", shape_str(quantized.shape())));
  const int64_t N = reference.size(0), C = reference.size(1);
  PredictionShift r;
  r.kl.resize(size_t(N));
  r.kl_approx.resize(size_t(N));
  std::vector<double> lp(static_cast<size_t>(C)), lq(static_cast<size_t>(C));
  int64_t same = 0;
  for (int64_t i = 0; i < N; ++i) {
    const float* z = reference.data() + i * C;
    const float* zq = quantized.data() + i * C;
    log_softmax(z, C, lp);
    log_softmax(zq, C, lq);
    double kl = 0, mean = 0, second = 0;
    for (int64_t c = 0; c < C; ++c) {
      const double p = std::exp(lp[size_t(c)]), dz = double(zq[c]) - double(z[c]);
      kl += p * (lp[size_t(c)] - lq[size_t(c)]);
      mean += p * dz;
      second += p * dz * dz;
    }
    r.kl[size_t(i)] = std::max(0.0, kl);  // rounding can leave -1e-17
    r.kl_approx[size_t(i)] = 0.5 * std::max(0.0, second - mean * mean);
    r.mean_kl += r.kl[size_t(i)];
    r.mean_kl_approx += r.kl_approx[size_t(i)];
    same += argmax(z, C) == argmax(zq, C);
  }
  r.mean_kl /= double(N);
  r.mean_kl_approx /= double(N);
  r.agreement = double(same) / double(N);
  return r;
}

}  // namespace crayon
