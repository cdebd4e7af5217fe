#pragma once
// Low-precision weight updates (Gupta, Agrawal, Gopalakrishnan & Narayanan, "Deep learning
// with limited numerical precision", ICML 2015): every parameter lives on a k-bit
// fixed-point grid, and each update is rounded back onto it, to nearest or stochastically.
//
// The grid. Gupta writes <IL, FL> for a signed fixed-point word of IL integer bits (sign
// included) and FL fractional bits, k = IL + FL. A value is an integer q times
// eps = 2^-FL with q in [-2^(k-1), 2^(k-1) - 1], so the range is
//   [lo, hi] = [-2^(IL-1), 2^(IL-1) - eps].
// apply() sets, per element,  w <- clamp(round(w / eps), -2^(k-1), 2^(k-1) - 1) * eps.
//
// Why rounding matters (Gupta, section 3). An SGD update u = -lr * g is usually far below
// eps. Round-to-nearest then throws it away whenever |u| < eps/2: the weight never moves
// and training stalls. Stochastic rounding moves the weight by eps with probability
// |u| / eps, so E[new w] = w + u: the update survives on average.
//
// It is a separate object applied right after optimizer.step(), so SGD, Adam and AdamW all
// take it unchanged; their own state (momentum, moments) stays in float32, as in Gupta.
//
//   WeightGrid grid(model.parameters(), {.bits = 8, .rounding = Rounding::stochastic});
//   ... opt.step(); grid.apply(opt.steps());
#include <cstdint>
#include <string>
#include <vector>

#include "core/rounding.h"
#include "core/variable.h"

namespace crayon {

struct WeightGridOptions {
  int bits = 0;        // word length k, 2..32; 0 turns the grid off (apply() does nothing)
  // Fractional bits FL, 0..k-1. -1 chooses it from the weights at construction: the largest
  // FL (finest grid) whose range still holds max |w| over every parameter, i.e. the smallest
  // integer part. A resumed run must pass the FL the first run chose (frac_bits()), since
  // the weights it would look at are the trained ones, not the initial ones.
  int frac_bits = -1;
  Rounding rounding = Rounding::nearest_even;  // or Rounding::stochastic (Gupta's two)
  uint64_t seed = 0;   // for stochastic rounding
};

class WeightGrid {
 public:
  // Rounds every parameter onto the grid now (to nearest, whatever options.rounding says),
  // having chosen FL first if options.frac_bits is -1. Biases are parameters too: Gupta
  // rounds all of them. Throws std::invalid_argument naming the option (bits, frac_bits)
  // or the parameter (undefined, not float32, listed twice; with frac_bits = -1: holding a
  // non-finite value, or too large for even FL = 0).
  WeightGrid(std::vector<Variable> params, WeightGridOptions options);

  // Round every parameter onto the grid; call after each optimizer step with that step's
  // number (e.g. opt.steps()). Stochastic draws come from an Rng seeded by a hash of
  // (seed, step, parameter index) and nothing else, so a resumed run that passes the same
  // step numbers rounds exactly as the uninterrupted run did, with no generator state in
  // the checkpoint. Non-finite values are left as they are, so a divergence stays visible
  // to the caller's NaN/Inf check.
  void apply(int64_t step);

  bool enabled() const { return options_.bits != 0; }
  int bits() const { return options_.bits; }
  int frac_bits() const { return frac_bits_; }  // FL; -1 when off
  double step_size() const;                     // eps = 2^-FL; 0 when off
  Rounding rounding() const { return options_.rounding; }
  // Values that rounded outside [lo, hi] and were clamped to an end, in the last apply()
  // (or in the construction's rounding, before any apply()). Many means IL is too small.
  int64_t saturated() const { return saturated_; }
  // "<IL=2,FL=6> stochastic" (Gupta's notation, IL = k - FL), or "off".
  std::string describe() const;

 private:
  void round_all(Rounding mode, int64_t step);

  std::vector<Variable> params_;
  WeightGridOptions options_;
  int frac_bits_ = -1;
  int64_t saturated_ = 0;
};

}  // namespace crayon
