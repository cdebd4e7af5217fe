#include "quant/quant_spec.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <sstream>
#include <stdexcept>
#include <vector>

#include "core/check.h"
#include "core/parallel.h"
#include "core/simd.h"
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

namespace {
using f32x16 = float __attribute__((vector_size(64)));
using i32x16 = int32_t __attribute__((vector_size(64)));

// The least (kMin) or the greatest of v's 16 lanes, folded pairwise (halves, quarters, ...);
// inlined into each ISA's build of its caller (vectors by reference: no vector ABI involved).
template <bool kMin>
[[gnu::always_inline]] inline float fold_lanes(const f32x16& lanes) {
  f32x16 v = lanes, t;
  auto pick = [&] {
    if constexpr (kMin) v = t < v ? t : v;
    else v = t > v ? t : v;
  };
  t = __builtin_shufflevector(v, v, 8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7), pick();
  t = __builtin_shufflevector(v, v, 4, 5, 6, 7, 0, 1, 2, 3, 12, 13, 14, 15, 8, 9, 10, 11), pick();
  t = __builtin_shufflevector(v, v, 2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13), pick();
  t = __builtin_shufflevector(v, v, 1, 0, 3, 2, 5, 4, 7, 6, 9, 8, 11, 10, 13, 12, 15, 14), pick();
  return v[0];
}

// Min, max and whether a NaN occurs over runs of n values: run k is p[k n, (k + 1) n), folded
// into (mn[k % channels], mx[k % channels]); nan is set if any value is NaN. Sixteen lanes at a
// time in GCC vector types (four SSE registers on baseline x86-64, so four independent
// chains): the compiler will not vectorize a float min/max reduction by itself without
// -ffast-math. NaN never wins a comparison, so it is counted apart. Each run's lanes are
// folded pairwise by shuffles (four steps, not a chain of sixteen), and all runs go through
// one call: a weight's rows are short, and that per-row overhead was half of its ranges'
// time. Cloned for AVX-512 and AVX2 (one or two registers per vector instead of four): QAT
// runs it on every weight at every step. Min and max are exact in any ISA and any order (but
// for which zero, -0 or +0, wins a tie: the grid chosen from the range is the same).
CRAYON_CLONES void fold_runs(const float* p, int64_t runs, int64_t n, int64_t channels, float* mn, float* mx,
                             bool& nan) {
  i32x16 bad{};
  for (int64_t k = 0; k < runs; ++k, p += n) {
    const size_t c = size_t(k % channels);
    f32x16 lo = f32x16{} + mn[c], hi = f32x16{} + mx[c];
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
      f32x16 v;
      std::memcpy(&v, p + i, sizeof v);
      lo = v < lo ? v : lo;
      hi = v > hi ? v : hi;
      bad |= v != v;
    }
    float a = fold_lanes<true>(lo), b = fold_lanes<false>(hi);
    for (; i < n; ++i) {
      a = std::min(a, p[i]);
      b = std::max(b, p[i]);
      bad[0] |= p[i] != p[i];
    }
    mn[c] = a, mx[c] = b;
  }
  for (int k = 0; k < 16; ++k) nan = nan || bad[k] != 0;
}
}  // namespace

// One range splits over the threads above this many values per thread: waking the pool
// costs more than a smaller range takes on one core (an MLP's activations, 16k to 100k).
constexpr int64_t kRangeGrain = int64_t(1) << 16;

Ranges tensor_ranges(const Tensor& x, int axis) {
  if (x.numel() == 0) throw std::invalid_argument(str("tensor_ranges: empty tensor ", shape_str(x.shape())));
  if (axis < -1 || axis >= x.ndim())
    throw std::invalid_argument(str("tensor_ranges: axis ", axis, " out of range for shape ", shape_str(x.shape())));
  const int64_t channels = axis < 0 ? 1 : x.size(axis), inner = axis < 0 ? x.numel() : inner_size(x.shape(), axis);
  Ranges r{std::vector<float>(size_t(channels), INFINITY), std::vector<float>(size_t(channels), -INFINITY)};
  const float* px = x.data();
  bool any_nan = false;
  if (channels == 1) {
    // One range (an activation): the threads take parts of a large one and the parts'
    // extremes are combined; min and max do not depend on the order.
    struct Part {
      float mn = INFINITY, mx = -INFINITY;
      bool nan = false;
    };
    std::vector<Part> parts(static_cast<size_t>(num_threads()));
    const int n = parallel_parts(x.numel(), [&](int part, int64_t b, int64_t e) {
      Part& q = parts[size_t(part)];
      fold_runs(px + b, 1, e - b, 1, &q.mn, &q.mx, q.nan);
    }, kRangeGrain);
    for (int k = 0; k < n; ++k) {
      r.min[0] = std::min(r.min[0], parts[size_t(k)].mn);
      r.max[0] = std::max(r.max[0], parts[size_t(k)].mx);
      any_nan = any_nan || parts[size_t(k)].nan;
    }
  } else {
    // One contiguous run per (outer index, channel), the channels in turn.
    fold_runs(px, x.numel() / inner, inner, channels, r.min.data(), r.max.data(), any_nan);
  }
  bool finite = !any_nan;
  for (size_t c = 0; c < size_t(channels); ++c) finite = finite && std::isfinite(r.min[c]) && std::isfinite(r.max[c]);
  if (!finite)
    for (int64_t i = 0; i < x.numel(); ++i)
      if (!std::isfinite(px[i]))
        throw std::invalid_argument(str("tensor_ranges: non-finite value ", px[i], " at flat index ", i, " of ",
                                        shape_str(x.shape())));
  return r;
}

}  // namespace crayon
