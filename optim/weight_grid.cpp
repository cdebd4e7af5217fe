#include "optim/weight_grid.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "core/check.h"
#include "optim/optimizer.h"

namespace crayon {

namespace {

// splitmix64's finalizer (Stafford's Mix13): a bijection on 64 bits that spreads every
// input bit over the output, so nearby (seed, step, index) triples get unrelated streams.
uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// The stochastic-rounding stream of parameter i at this step: a function of the three
// numbers alone, so it needs no checkpointed generator state.
uint64_t stream_seed(uint64_t seed, int64_t step, size_t i) {
  const uint64_t golden = 0x9e3779b97f4a7c15ULL;
  uint64_t h = mix64(seed + golden);
  h = mix64(h ^ (uint64_t(step) + 2 * golden));
  return mix64(h ^ (uint64_t(i) + 3 * golden));
}

// Largest integer multiplier q of eps on the grid, 2^(k-1) - 1, as the largest float not
// above it: float32 holds it exactly up to k = 25; past that the next float up would be
// 2^(k-1), one step outside the range.
float q_max(int bits) {
  const double exact = std::ldexp(1.0, bits - 1) - 1.0;
  float q = float(exact);
  if (double(q) > exact) q = std::nextafter(q, 0.f);
  return q;
}

}  // namespace

WeightGrid::WeightGrid(std::vector<Variable> params, WeightGridOptions options)
    : params_(std::move(params)), options_(options) {
  const int k = options.bits, fl = options.frac_bits;
  if (k != 0 && (k < 2 || k > 32))
    throw std::invalid_argument(str("WeightGrid: bits must be 0 (off) or in 2..32, got ", k));
  if (k == 0 && fl != -1)
    throw std::invalid_argument(
        str("WeightGrid: frac_bits = ", fl, " given but bits = 0 turns the grid off"));
  if (k != 0 && (fl < -1 || fl >= k))
    throw std::invalid_argument(str("WeightGrid: frac_bits must be -1 (auto) or in 0..bits-1 = 0..",
                                    k - 1, ", got ", fl));
  check_parameter_list(params_, "WeightGrid");
  if (k == 0) return;

  frac_bits_ = fl;
  if (fl == -1) {
    // The largest FL with max|w| <= hi = (2^(k-1) - 1) * 2^-FL: then no initial value
    // saturates (-max|w| >= -hi > lo too), and the grid is as fine as that allows.
    float max_abs = 0.f;
    for (size_t i = 0; i < params_.size(); ++i)
      for (float w : params_[i].value().values()) {
        if (!std::isfinite(w))
          throw std::invalid_argument(str("WeightGrid: cannot choose frac_bits: parameter ", i,
                                          " holds a non-finite value (", w, ")"));
        max_abs = std::max(max_abs, std::fabs(w));
      }
    const double q_hi = std::ldexp(1.0, k - 1) - 1.0;
    for (int f = k - 1; f >= 0 && frac_bits_ == -1; --f)
      if (double(max_abs) <= std::ldexp(q_hi, -f)) frac_bits_ = f;
    if (frac_bits_ == -1)
      throw std::invalid_argument(str("WeightGrid: bits = ", k, " cannot hold max |w| = ", max_abs,
                                      " even with frac_bits = 0 (range up to ", q_hi, ")"));
  }
  round_all(Rounding::nearest_even, 0);
}

void WeightGrid::apply(int64_t step) {
  if (!enabled()) return;
  round_all(options_.rounding, step);
}

// Rounding w itself is rounding the update: w was on the grid before the step, w = n * eps,
// so w_new / eps = n + u / eps and, n being an integer, floor(n + x) = n + floor(x):
// stochastic rounding moves w by round(u / eps) * eps exactly as Gupta rounds u. The same
// holds for round-to-nearest except on a tie (u an odd multiple of eps/2), which
// nearest-even sends to the even multiple of eps, so its direction depends on w, not on u
// alone. (And w + u was already rounded to float32 by the optimizer, losing the part of u
// below half of w's float ulp; with |w| < 2^(k-1) * eps that ulp is at most eps * 2^(k-24).)
void WeightGrid::round_all(Rounding mode, int64_t step) {
  const int fl = frac_bits_;
  const float scale = std::ldexp(1.f, fl), eps = std::ldexp(1.f, -fl);
  const float q_lo = -std::ldexp(1.f, options_.bits - 1), q_hi = q_max(options_.bits);
  int64_t saturated = 0;
  for (size_t i = 0; i < params_.size(); ++i) {
    Rng rng(stream_seed(options_.seed, step, i));
    Rng* r = mode == Rounding::stochastic ? &rng : nullptr;
    for (float& w : params_[i].value().values()) {
      // w * 2^FL and q * 2^-FL are exact in float (power-of-two scales; w * 2^FL can only
      // overflow to inf past 2^(127-FL), and then it saturates like any large value).
      float q = round_value(w * scale, mode, r);  // one draw per element, whatever w is
      if (!std::isfinite(w)) continue;
      if (q < q_lo) q = q_lo, ++saturated;
      else if (q > q_hi) q = q_hi, ++saturated;
      w = q * eps;
    }
  }
  saturated_ = saturated;
}

double WeightGrid::step_size() const { return enabled() ? std::ldexp(1.0, -frac_bits_) : 0.0; }

std::string WeightGrid::describe() const {
  if (!enabled()) return "off";
  return str("<IL=", options_.bits - frac_bits_, ",FL=", frac_bits_, "> ",
             rounding_name(options_.rounding));
}

}  // namespace crayon
