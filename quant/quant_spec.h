#pragma once
// What grid a tensor is quantized to (QuantSpec) and where the grid sits (QParams).
//
// The affine map of gemmlowp's doc/quantization.md: a real value x is stored as an integer
//
//     q = clamp(round(x / scale) + zero_point, qmin, qmax),      x_hat = (q - zero_point) * scale
//
// so the grid is {(q - zero_point) * scale : q in [qmin, qmax]}: step scale (Delta), and
// real 0 is exactly representable (q = zero_point) because zero_point is an integer.
//
// Integer ranges (the TFLite int8 convention, both modes signed 8-bit-style):
//   symmetric                [-2^(b-1),     2^(b-1) - 1]   int8: [-128, 127], zero_point = 0
//   symmetric, narrow_range  [-(2^(b-1)-1), 2^(b-1) - 1]   int8: [-127, 127] (weights: the grid
//                                                            is symmetric, -w and w both fit)
//   affine                   [-2^(b-1),     2^(b-1) - 1]   int8: [-128, 127] with a zero point
//                                                            (TFLite int8 activations; a ReLU
//                                                            output [0, m] gets zero_point -128)
// narrow_range raises qmin by one in affine mode too. bits must be in [2, 8].
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "core/rounding.h"
#include "core/tensor.h"

namespace crayon {

struct QuantSpec {
  int bits = 8;
  bool symmetric = true;
  bool narrow_range = false;
  int axis = -1;  // -1: one scale for the whole tensor; >= 0: one scale per index along axis
  Rounding rounding = Rounding::nearest_even;

  int32_t qmin() const;  // both validate() first
  int32_t qmax() const;
  bool per_channel() const { return axis >= 0; }
  // Throws std::invalid_argument naming the value: bits outside [2, 8], axis < -1.
  void validate() const;
};

// "int8 symmetric per-tensor nearest-even", "int4 affine narrow per-channel(axis 0) stochastic".
std::string describe(const QuantSpec& spec);

// Parses a comma-separated list for command lines, e.g. "bits=4,affine,narrow,axis=0,
// rounding=stochastic" (keys: bits=N, symmetric, affine, narrow, axis=N, per-tensor,
// rounding=NAME); starts from the defaults. Throws std::invalid_argument naming the item.
QuantSpec parse_quant_spec(const std::string& text);

// One scale and zero point per channel (one entry when axis = -1).
struct QParams {
  std::vector<float> scale;
  std::vector<int32_t> zero_point;
  int axis = -1;
  size_t channels() const { return scale.size(); }
};

// Throws std::invalid_argument unless scale and zero_point have the same size >= 1, every
// scale is finite and > 0, and every zero point lies in [spec.qmin(), spec.qmax()] (and is 0
// when spec.symmetric).
void validate_qparams(const QParams& qp, const QuantSpec& spec);

// Scale and zero point that put the grid over the real range [min, max]
// (gemmlowp doc/quantization.md, "choosing scale and zero point"):
//   - the range is first extended to contain 0: min <- min(min, 0), max <- max(max, 0);
//   - symmetric: zero_point = 0, scale = max(|min|, |max|) / qmax;
//   - affine:    scale = (max - min) / (qmax - qmin),
//                zero_point = round(qmin - min / scale), clamped to [qmin, qmax]
//                (the "nudge": the real zero point is moved to the nearest integer so 0 is
//                exactly representable; the grid shifts by less than scale / 2);
//   - a zero range (all values 0) gives scale = 1; any smaller scale is raised to
//     kMinScale = 2^-23 (float epsilon, as PyTorch's observers do) so x / scale stays finite.
// Per-tensor: returns one channel and axis -1, whatever spec.axis is.
// Throws std::invalid_argument for non-finite bounds or min > max.
inline constexpr float kMinScale = 1.1920929e-07f;
QParams choose_qparams(float min, float max, const QuantSpec& spec);
// Per-channel: mins[c], maxs[c] for each channel; the result has axis = spec.axis.
QParams choose_qparams(std::span<const float> mins, std::span<const float> maxs, const QuantSpec& spec);

// The min and max of x, over the whole tensor (axis = -1, one entry) or per index along
// axis. Throws std::invalid_argument for an empty tensor, an axis out of range or a
// non-finite value (naming its index).
struct Ranges {
  std::vector<float> min, max;
};
Ranges tensor_ranges(const Tensor& x, int axis);

// Channel of flat index i when x has `channels` entries along an axis whose inner block
// (product of the later dims) is `inner`: (i / inner) % channels. Used by every per-channel loop.
inline int64_t channel_of(int64_t i, int64_t inner, int64_t channels) { return (i / inner) % channels; }
// Product of the dims after axis (1 for the last axis).
int64_t inner_size(const Shape& shape, int axis);

}  // namespace crayon
