#include "quant/int8/requant.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "core/check.h"
#include "quant/int8/gemm.h"

namespace crayon {

FixedPointMultiplier quantize_multiplier(double real) {
  if (!std::isfinite(real) || real <= 0 || real >= 2147483648.0)
    throw std::invalid_argument(str("quantize_multiplier: real multiplier ", real, " (expected finite, in (0, 2^31))"));
  int shift = 0;
  const double q = std::frexp(real, &shift);  // real = q * 2^shift, q in [0.5, 1)
  int64_t fixed = int64_t(std::round(q * 2147483648.0));
  if (fixed == (int64_t(1) << 31)) {  // q rounded up to 1.0: 2^31 does not fit, use 2^30 * 2
    fixed /= 2;
    ++shift;
  }
  if (shift < -31) return {0, 0};  // every bit would be shifted out: flush to zero (TFLite)
  return {int32_t(fixed), shift};
}

double multiplier_value(FixedPointMultiplier m) { return std::ldexp(double(m.multiplier), m.shift - 31); }

OutputStage make_output_stage(double s_in, std::span<const float> s_w, double s_out, int32_t zero_point,
                              int32_t act_min, int32_t act_max) {
  OutputStage stage{{}, zero_point, act_min, act_max};
  for (float s : s_w) stage.multiplier.push_back(quantize_multiplier(s_in * double(s) / s_out));
  return stage;
}

void requantize(const int32_t* acc, int64_t rows, int64_t n, const int32_t* bias, const FixedPointMultiplier* mult,
                int32_t out_zero_point, int32_t act_min, int32_t act_max, int8_t* out, bool transpose,
                int64_t ld_out) {
  if (act_min < -128 || act_max > 127 || act_min > act_max)
    throw std::invalid_argument(str("requantize: activation range [", act_min, ", ", act_max,
                                    "] (expected -128 <= min <= max <= 127)"));
  if (out_zero_point < -128 || out_zero_point > 127)
    throw std::invalid_argument(str("requantize: output zero point ", out_zero_point, " outside [-128, 127]"));
  if (ld_out == 0) ld_out = transpose ? rows : n;
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < n; ++j)
      out[transpose ? j * ld_out + i : i * ld_out + j] =
          requantize_value(acc[i * n + j], bias ? bias[j] : 0, mult[j], out_zero_point, act_min, act_max);
}

std::vector<int32_t> fold_input_zero_point(std::span<const int32_t> bias, const PackedWeights& w,
                                           int32_t in_zero_point) {
  if (!bias.empty() && int64_t(bias.size()) != w.n)
    throw std::invalid_argument(str("fold_input_zero_point: bias has ", bias.size(), " entries for ", w.n,
                                    " output channels"));
  std::vector<int32_t> folded(size_t(w.n));
  for (int64_t j = 0; j < w.n; ++j) {
    const int64_t v = (bias.empty() ? 0 : int64_t(bias[size_t(j)])) - int64_t(in_zero_point) * w.row_sums[size_t(j)];
    if (v < std::numeric_limits<int32_t>::min() || v > std::numeric_limits<int32_t>::max())
      throw std::overflow_error(str("fold_input_zero_point: channel ", j, ": bias - z_in * rowsum = ", v,
                                    " does not fit in int32"));
    folded[size_t(j)] = int32_t(v);
  }
  return folded;
}

}  // namespace crayon
