#pragma once
// Requantization: from an int32 accumulator back to an int8 activation, in integers only.
//
// A layer computes acc[c] = sum_k (q_x - z_in) * q_w[c,k] + bias[c], whose real value is
// s_in * s_w[c] * acc[c] (weights symmetric, bias on the scale s_in * s_w[c]). On the output
// grid (s_out, z_out) that is
//
//     q_y = clamp(z_out + round(M[c] * acc[c]), act_min, act_max),   M[c] = s_in * s_w[c] / s_out
//
// (gemmlowp doc/quantization.md, "the final scaling"). The real M is stored as an int32
// multiplier m in [2^30, 2^31) and a shift e with M ~= m * 2^(e - 31) (TFLite's
// QuantizeMultiplier), and applied with ONE rounding of the exact product:
//
//     round_half_even(x * m / 2^(31 - e))        (x * m exact in int64: |x * m| < 2^62)
//
// This is TFLite's single-rounding variant of MultiplyByQuantizedMultiplier
// (TFLITE_SINGLE_ROUNDING), with ties to even instead of up, so the engine rounds where
// fake-quant (round_half_even(y / s_out)) and ONNX's QuantizeLinear round: it differs from
// round_half_even(x * M) only through m's 31 bits (|m 2^(e-31) - M| <= 2^-31 M). gemmlowp's
// default, a rounding doubling high multiply followed by a rounding shift, rounds twice and
// is off by one on about 1 % of a 4-bit layer's outputs (crayon's int8 format before
// version 3 did that).
// The act_min / act_max clamp is the fused activation: [z_out, 127] is ReLU, [z_out,
// z_out + round(6 / s_out)] ReLU6, [-128, 127] plain int8 saturation.
#include <algorithm>
#include <cstdint>
#include <limits>
#include <span>
#include <vector>

namespace crayon {

struct PackedWeights;

struct FixedPointMultiplier {
  int32_t multiplier = 0;  // in [2^30, 2^31), or 0 for a multiplier flushed to zero
  int shift = 0;           // in [-31, 31]: M = multiplier * 2^(shift - 31) (TFLite's convention)
};

// TFLite's QuantizeMultiplier: frexp(real) = q * 2^shift with q in [0.5, 1), multiplier =
// round(q * 2^31) (ties away); a q that rounds up to 2^31 becomes 2^30 with shift + 1. Reals
// below about 2^-32 (shift < -31) are flushed to multiplier 0, shift 0, as TFLite does: every
// product then rounds to 0. Reals >= 2^31 cannot be represented and throw, as do real <= 0
// and non-finite reals (std::invalid_argument naming the value).
FixedPointMultiplier quantize_multiplier(double real);
// multiplier * 2^(shift - 31), the real a FixedPointMultiplier stands for.
double multiplier_value(FixedPointMultiplier m);

// round_half_even(x * m.multiplier / 2^(31 - m.shift)), saturated to int32 (only a multiplier
// >= 1, which real layers never have, can leave int32).
inline int32_t multiply_by_quantized_multiplier(int32_t x, FixedPointMultiplier m) {
  const int total = 31 - m.shift;  // in [0, 62]: shift in [-31, 31]
  const int64_t p = int64_t(x) * int64_t(m.multiplier);
  int64_t r = p;
  if (total > 0) {
    const int64_t half = int64_t(1) << (total - 1);
    r = (p + (half - 1) + ((p >> total) & 1)) >> total;  // ties to even; >> of a negative is floor in C++20
  }
  return int32_t(std::clamp<int64_t>(r, std::numeric_limits<int32_t>::min(), std::numeric_limits<int32_t>::max()));
}

// One element of requantize() below: clamp(z_out + R(sat32(acc + bias), m), act_min, act_max), R =
// multiply_by_quantized_multiplier.
inline int8_t requantize_value(int32_t acc, int32_t bias, FixedPointMultiplier m, int32_t zero_point,
                               int32_t act_min, int32_t act_max) {
  const int64_t sum = int64_t(acc) + int64_t(bias);
  const int32_t x = sum > std::numeric_limits<int32_t>::max() ? std::numeric_limits<int32_t>::max()
                  : sum < std::numeric_limits<int32_t>::min() ? std::numeric_limits<int32_t>::min()
                                                              : int32_t(sum);
  const int64_t v = int64_t(zero_point) + int64_t(multiply_by_quantized_multiplier(x, m));
  return int8_t(v < act_min ? act_min : v > act_max ? act_max : v);
}

// The output stage of one integer layer (gemmlowp public/output_stages.h: scale by a
// fixed-point multiplier, add the zero point, clamp), per output channel.
struct OutputStage {
  std::vector<FixedPointMultiplier> multiplier;  // (N,) M[c] = s_in * s_w[c] / s_out
  int32_t zero_point = 0;                        // z_out
  int32_t act_min = -128, act_max = 127;         // the fused activation, inside [-128, 127]
};
// M[c] = s_in * s_w[c] / s_out for each c (s_w has one entry per output channel).
OutputStage make_output_stage(double s_in, std::span<const float> s_w, double s_out, int32_t zero_point,
                              int32_t act_min = -128, int32_t act_max = 127);

// acc: (rows, n) int32 -> out: (rows, n) int8, or (n, rows) when transpose (a convolution's
// pixels x channels back to NCHW):
//     out = clamp(zero_point + R(acc[i][j] + bias[j], multiplier[j]), act_min, act_max).
// bias may be null. acc + bias saturates to int32 (it never comes near for real layers).
// ld_out is out's row stride (0: contiguous, i.e. n, or rows when transposed), so a chunk
// of pixels can land in its columns of a whole image.
// Throws std::invalid_argument unless -128 <= act_min <= act_max <= 127 and the zero point
// is in [-128, 127].
void requantize(const int32_t* acc, int64_t rows, int64_t n, const int32_t* bias, const FixedPointMultiplier* mult,
                int32_t out_zero_point, int32_t act_min, int32_t act_max, int8_t* out, bool transpose,
                int64_t ld_out = 0);
inline void requantize(const int32_t* acc, int64_t rows, int64_t n, const int32_t* bias, const OutputStage& stage,
                       int8_t* out, bool transpose, int64_t ld_out = 0) {
  requantize(acc, rows, n, bias, stage.multiplier.data(), stage.zero_point, stage.act_min, stage.act_max, out,
             transpose, ld_out);
}

// The input zero point moved into the bias: sum_k (q_x - z_in) w[j,k] + bias[j]
// = sum_k q_x w[j,k] + (bias[j] - z_in * rowsum(w[j])), so gemm_s8 can multiply the raw q_x.
// bias: (n,) or empty (zeros). Throws std::overflow_error if a folded bias leaves int32.
std::vector<int32_t> fold_input_zero_point(std::span<const int32_t> bias, const PackedWeights& w,
                                           int32_t in_zero_point);

}  // namespace crayon
