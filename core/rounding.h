#pragma once
// Rounding a real number to an integer: the primitive under fake-quantization (quant/) and
// low-precision weight updates (optim/), DESIGN.md ideas 2 and 7.
//
//   nearest_even  round to the nearest integer, ties to even (IEEE 754's default; what
//                 PyTorch's fake_quantize uses via nearbyint): 0.5 -> 0, 1.5 -> 2, 2.5 -> 2
//   nearest_away  round to the nearest integer, ties away from zero (std::round):
//                 0.5 -> 1, 2.5 -> 3, -2.5 -> -3
//   stochastic    floor(v) + (u < frac ? 1 : 0), frac = v - floor(v), u ~ U[0, 1) drawn
//                 from the caller's Rng: rounds up with probability frac, so
//                 E[round(v)] = floor(v) + frac = v (unbiased; Gupta et al., "Deep learning
//                 with limited numerical precision", ICML 2015). u has 24 random bits, so
//                 P(up) = ceil(frac * 2^24) / 2^24, within 2^-24 of frac.
//
// Stochastic rounding draws exactly ONE uniform per value, whatever the value (also for
// integers, NaN and infinities), so the generator's stream position depends only on how
// many values were rounded: a run is reproducible from the seed alone.
// Non-finite values pass through unchanged (NaN stays NaN, +-inf stays +-inf).
#include <span>
#include <string_view>

#include "core/rng.h"

namespace crayon {

enum class Rounding { nearest_even, nearest_away, stochastic };

// Throws std::invalid_argument if mode is stochastic and rng is null.
float round_value(float v, Rounding mode, Rng* rng = nullptr);
// out[i] = round_value(in[i]) in index order (so one draw per element, in order); in and out
// may be the same span; sizes must match.
void round_values(std::span<const float> in, std::span<float> out, Rounding mode, Rng* rng = nullptr);

// "nearest" (= nearest-even), "nearest-even", "nearest-away", "stochastic"; anything else
// throws std::invalid_argument naming the text and the choices.
Rounding parse_rounding(std::string_view name);
const char* rounding_name(Rounding mode);  // "nearest-even", "nearest-away", "stochastic"

}  // namespace crayon
