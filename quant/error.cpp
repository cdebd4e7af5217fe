#include "quant/error.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "core/check.h"
#include "quant/fake_quant.h"

namespace crayon {

QuantError decompose_error(const Tensor& x, const QParams& qp, const QuantSpec& spec, Rng* rng) {
  const Tensor xq = fake_quant_values(x, qp, spec, rng);  // validates qp against x and spec
  const int64_t channels = int64_t(qp.channels());
  const int64_t inner = qp.axis < 0 ? x.numel() : inner_size(x.shape(), qp.axis);
  const float qmin = float(spec.qmin()), qmax = float(spec.qmax());
  QuantError e;
  e.count = x.numel();
  const float *px = x.data(), *pq = xq.data();
  for (int64_t i = 0; i < x.numel(); ++i) {
    const size_t c = size_t(channel_of(i, inner, channels));
    // The range ends exactly as fake-quant computes them, so a saturated value's x_hat is c(x).
    const float s = qp.scale[c], z = float(qp.zero_point[c]);
    const double lo = (qmin - z) * s, hi = (qmax - z) * s, v = px[i];
    if (v < lo || v > hi) {
      const double d = v < lo ? lo - v : v - hi;
      ++e.saturated;
      e.saturation_sse += d * d;
      e.max_saturation_error = std::max(e.max_saturation_error, d);
    } else {
      const double d = std::fabs(v - double(pq[i]));
      e.rounding_sse += d * d;
      e.max_rounding_error = std::max(e.max_rounding_error, d);
    }
  }
  return e;
}

QParams clipped_qparams(const Ranges& ranges, float ratio, const QuantSpec& spec) {
  if (!(ratio > 0.f && ratio <= 1.f))
    throw std::invalid_argument(str("clip ratio must be in (0, 1], got ", ratio));
  std::vector<float> mins(ranges.min.size()), maxs(ranges.max.size());
  for (size_t c = 0; c < mins.size(); ++c) {
    mins[c] = ratio * ranges.min[c];
    maxs[c] = ratio * ranges.max[c];
  }
  if (spec.axis < 0) return choose_qparams(mins.at(0), maxs.at(0), spec);
  return choose_qparams(mins, maxs, spec);
}

std::vector<ClipPoint> clip_sweep(const Tensor& x, const QuantSpec& spec, const std::vector<float>& ratios) {
  spec.validate();
  if (spec.rounding == Rounding::stochastic)
    throw std::invalid_argument("clip_sweep: use a deterministic rounding mode (spec has stochastic)");
  const Ranges ranges = tensor_ranges(x, spec.axis);
  std::vector<ClipPoint> out;
  for (float r : ratios) {
    QParams qp = clipped_qparams(ranges, r, spec);
    QuantError e = decompose_error(x, qp, spec);
    out.push_back({r, std::move(qp), e});
  }
  return out;
}

}  // namespace crayon
