#pragma once
// The two errors of putting reals on an integer grid (DESIGN.md, idea 2).
//
// A grid with step scale and zero point z covers the real interval
//     [lo, hi] = [(qmin - z) * scale, (qmax - z) * scale]        (per channel).
// For each element split the error x - x_hat at the clamp c(x) = clamp(x, lo, hi):
//     x - x_hat = (x - c(x)) + (c(x) - x_hat)
//                  saturation   rounding
// A value outside [lo, hi] lands exactly on the end (x_hat = c(x)), so its rounding part is
// 0; a value inside has no saturation part. Each element has at most one nonzero part, and
// the squared errors add up exactly: total_sse = saturation_sse + rounding_sse.
// Inside the range the rounding error is at most scale / 2 with round-to-nearest (and below
// scale with stochastic rounding).
#include <cstdint>
#include <vector>

#include "core/rng.h"
#include "core/tensor.h"
#include "quant/quant_spec.h"

namespace crayon {

struct QuantError {
  int64_t count = 0;              // elements
  int64_t saturated = 0;          // elements outside [lo, hi]
  double saturation_sse = 0;      // sum of (x - c(x))^2 over saturated elements
  double rounding_sse = 0;        // sum of (x - x_hat)^2 over elements inside [lo, hi]
  double max_saturation_error = 0;  // max |x - c(x)|
  double max_rounding_error = 0;    // max |x - x_hat| inside [lo, hi] (<= scale / 2 for nearest)
  double total_sse() const { return saturation_sse + rounding_sse; }
  double mse() const { return count ? total_sse() / double(count) : 0.0; }
};

// x against its fake-quantized self under qp (per-tensor or per-channel as qp.axis says).
// rng is needed only for stochastic rounding.
QuantError decompose_error(const Tensor& x, const QParams& qp, const QuantSpec& spec, Rng* rng = nullptr);

// The clip-ratio trade-off: for each ratio r in (0, 1], the grid is chosen by
// choose_qparams over r * [min, max] of x (per channel when spec.axis >= 0), so r = 1 is
// min-max calibration and smaller r clips more but rounds finer.
struct ClipPoint {
  float ratio;
  QParams qparams;
  QuantError error;
};
std::vector<ClipPoint> clip_sweep(const Tensor& x, const QuantSpec& spec, const std::vector<float>& ratios);

// The qparams of one clip ratio (what clip_sweep uses): choose_qparams over r * ranges.
QParams clipped_qparams(const Ranges& ranges, float ratio, const QuantSpec& spec);

}  // namespace crayon
