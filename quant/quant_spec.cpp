#include "quant/quant_spec.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <sstream>
#include <stdexcept>

#include "core/check.h"
#include "core/parse.h"

namespace crayon {

void QuantSpec::validate() const {
  if (bits < 2 || bits > 8)
    throw std::invalid_argument(str("QuantSpec: bits must be in [2, 8], got ", bits));
  if (axis < -1)
    throw std::invalid_argument(str("QuantSpec: axis must be -1 (per-tensor) or >= 0, got ", axis));
}

int32_t QuantSpec::qmin() const {
  validate();
  return -(int32_t(1) << (bits - 1)) + (narrow_range ? 1 : 0);
}

int32_t QuantSpec::qmax() const {
  validate();
  return (int32_t(1) << (bits - 1)) - 1;
}

std::string describe(const QuantSpec& spec) {
  std::string s = str("int", spec.bits, spec.symmetric ? " symmetric" : " affine");
  if (spec.narrow_range) s += " narrow";
  s += spec.axis < 0 ? std::string(" per-tensor") : str(" per-channel(axis ", spec.axis, ")");
  return s + " " + rounding_name(spec.rounding);
}

QuantSpec parse_quant_spec(const std::string& text) {
  QuantSpec spec;
  std::stringstream ss(text);
  std::string item;
  auto integer = [&](const std::string& v) {
    int n = 0;
    if (!parse_number(v, n))
      throw std::invalid_argument(one_line(str("quant spec '", text, "': '", item, "' needs an integer")));
    return n;
  };
  while (std::getline(ss, item, ',')) {
    const size_t eq = item.find('=');
    const std::string key = item.substr(0, eq), value = eq == std::string::npos ? "" : item.substr(eq + 1);
    if (key == "bits" && eq != std::string::npos) spec.bits = integer(value);
    else if (key == "axis" && eq != std::string::npos) spec.axis = integer(value);
    else if (key == "rounding" && eq != std::string::npos) spec.rounding = parse_rounding(value);
    else if (item == "symmetric") spec.symmetric = true;
    else if (item == "affine") spec.symmetric = false;
    else if (item == "narrow") spec.narrow_range = true;
    else if (item == "per-tensor") spec.axis = -1;
    else
      throw std::invalid_argument(one_line(str("quant spec '", text, "': unknown item '", item,
                                               "' (expected bits=N, symmetric, affine, narrow, axis=N, "
                                               "per-tensor, rounding=NAME)")));
  }
  spec.validate();
  return spec;
}

void validate_qparams(const QParams& qp, const QuantSpec& spec) {
  const int32_t qmin = spec.qmin(), qmax = spec.qmax();
  if (qp.scale.empty() || qp.scale.size() != qp.zero_point.size())
    throw std::invalid_argument(str("QParams: ", qp.scale.size(), " scales and ", qp.zero_point.size(),
                                    " zero points (need the same number, at least one)"));
  if (qp.axis < -1) throw std::invalid_argument(str("QParams: axis must be -1 or >= 0, got ", qp.axis));
  if (qp.axis == -1 && qp.scale.size() != 1)
    throw std::invalid_argument(str("QParams: per-tensor (axis -1) but ", qp.scale.size(), " scales"));
  for (size_t c = 0; c < qp.scale.size(); ++c) {
    if (!(std::isfinite(qp.scale[c]) && qp.scale[c] > 0.f))
      throw std::invalid_argument(str("QParams: scale[", c, "] = ", qp.scale[c], " (must be finite and > 0)"));
    const int32_t z = qp.zero_point[c];
    if (z < qmin || z > qmax || (spec.symmetric && z != 0))
      throw std::invalid_argument(str("QParams: zero_point[", c, "] = ", z, " outside [", qmin, ", ", qmax,
                                      "]", spec.symmetric ? " or nonzero in symmetric mode" : ""));
  }
}

namespace {
void one_channel(float min, float max, const QuantSpec& spec, float& scale, int32_t& zero_point) {
  if (!(std::isfinite(min) && std::isfinite(max)) || min > max)
    throw std::invalid_argument(str("choose_qparams: bad range [", min, ", ", max, "]"));
  min = std::min(min, 0.f);  // make 0 part of the range
  max = std::max(max, 0.f);
  const int32_t qmin = spec.qmin(), qmax = spec.qmax();
  if (max == min) {  // all zeros: any scale represents them; 0 maps to the zero point
    scale = 1.f;
    zero_point = spec.symmetric ? 0 : qmin;
    return;
  }
  if (spec.symmetric) {
    scale = std::max(std::max(-min, max) / float(qmax), kMinScale);
    zero_point = 0;
    return;
  }
  scale = std::max(float((double(max) - double(min)) / double(qmax - qmin)), kMinScale);
  const double z = std::round(double(qmin) - double(min) / double(scale));
  zero_point = int32_t(std::clamp(z, double(qmin), double(qmax)));
}
}  // namespace

QParams choose_qparams(float min, float max, const QuantSpec& spec) {
  QParams qp{{0.f}, {0}, -1};
  one_channel(min, max, spec, qp.scale[0], qp.zero_point[0]);
  return qp;
}

QParams choose_qparams(std::span<const float> mins, std::span<const float> maxs, const QuantSpec& spec) {
  spec.validate();
  if (mins.empty() || mins.size() != maxs.size())
    throw std::invalid_argument(str("choose_qparams: ", mins.size(), " mins and ", maxs.size(), " maxs"));
  if (spec.axis < 0 && mins.size() != 1)
    throw std::invalid_argument(str("choose_qparams: per-tensor spec but ", mins.size(), " ranges"));
  QParams qp{std::vector<float>(mins.size()), std::vector<int32_t>(mins.size()), spec.axis};
  for (size_t c = 0; c < mins.size(); ++c) one_channel(mins[c], maxs[c], spec, qp.scale[c], qp.zero_point[c]);
  return qp;
}

int64_t inner_size(const Shape& shape, int axis) {
  int64_t inner = 1;
  for (size_t d = size_t(axis) + 1; d < shape.size(); ++d) inner *= shape[d];
  return inner;
}

Ranges tensor_ranges(const Tensor& x, int axis) {
  if (x.numel() == 0) throw std::invalid_argument(str("tensor_ranges: empty tensor ", shape_str(x.shape())));
  if (axis < -1 || axis >= x.ndim())
    throw std::invalid_argument(str("tensor_ranges: axis ", axis, " out of range for shape ", shape_str(x.shape())));
  const int64_t channels = axis < 0 ? 1 : x.size(axis), inner = axis < 0 ? x.numel() : inner_size(x.shape(), axis);
  Ranges r{std::vector<float>(size_t(channels), INFINITY), std::vector<float>(size_t(channels), -INFINITY)};
  const float* px = x.data();
  // One contiguous run per (outer index, channel), four lanes at a time in GCC vector
  // types (one SSE register on baseline x86-64): the compiler will not vectorize a float
  // min/max reduction by itself without -ffast-math. NaN never wins a comparison, so it is
  // counted apart.
  using f32x4 = float __attribute__((vector_size(16)));
  using i32x4 = int32_t __attribute__((vector_size(16)));
  bool finite = true;
  for (int64_t start = 0; start < x.numel(); start += inner) {
    const size_t c = size_t(channel_of(start, inner, channels));
    const float* p = px + start;
    f32x4 lo = f32x4{} + r.min[c], hi = f32x4{} + r.max[c];
    i32x4 nan{};
    int64_t i = 0;
    for (; i + 4 <= inner; i += 4) {
      f32x4 v;
      std::memcpy(&v, p + i, sizeof v);
      lo = v < lo ? v : lo;
      hi = v > hi ? v : hi;
      nan |= v != v;
    }
    float mn = r.min[c], mx = r.max[c];
    bool any_nan = false;
    for (int k = 0; k < 4; ++k) {
      mn = std::min(mn, lo[k]);
      mx = std::max(mx, hi[k]);
      any_nan = any_nan || nan[k] != 0;
    }
    for (; i < inner; ++i) {
      mn = std::min(mn, p[i]);
      mx = std::max(mx, p[i]);
      any_nan = any_nan || p[i] != p[i];
    }
    r.min[c] = mn;
    r.max[c] = mx;
    finite = finite && !any_nan && std::isfinite(mn) && std::isfinite(mx);
  }
  if (!finite)
    for (int64_t i = 0; i < x.numel(); ++i)
      if (!std::isfinite(px[i]))
        throw std::invalid_argument(str("tensor_ranges: non-finite value ", px[i], " at flat index ", i, " of ",
                                        shape_str(x.shape())));
  return r;
}

}  // namespace crayon
