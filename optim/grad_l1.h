#pragma once
// Gradient-L1 regularization (Alizadeh et al., "Gradient L1 Regularization for
// Quantization Robustness", ICLR 2020): a first-order model of what quantizing the
// weights costs, L(w + delta) - L(w) ~ <g, delta> with |delta_i| <= step / 2, is bounded by
// (step / 2) ||g||_1, so training with the penalty
//
//     R(w) = lambda * ||g(w)||_1,    g = dL/dw,
//
// keeps the loss flat along every quantization error. Its gradient is
// dR/dw = lambda * H(w) sign(g), H the Hessian of L: a Hessian-vector product with
// v = sign(g). crayon's autograd has no double backward, so H v comes from a central
// finite difference of two more backward passes on the same batch:
//
//     H v ~ (g(w + h v) - g(w - h v)) / (2 h),   h = step_ratio * rms(w),
//
// whose error is h^2/6 times the third derivative of L along v (truncation) plus about
// ulp(g) / h (float32 rounding); step_ratio = 5e-3 (about the cube root of float32's
// epsilon, the balance of the two for a central difference) on weights of unit scale.
// A ReLU network's L is piecewise quadratic in w, so where no activation changes sign
// between w - h v and w + h v the difference is exact up to rounding. Each step costs
// two more forward and backward passes (about 3x the time of a plain step).
#include <functional>
#include <vector>

#include "core/variable.h"

namespace crayon {

struct GradL1Options {
  double lambda = 0.0;        // > 0
  double step_ratio = 5e-3;   // h = step_ratio * rms of the weights (> 0)
};

// Call after the loss's backward pass filled the gradients of `params` (weights among
// them). `recompute` must zero the gradients and run the same forward and backward again
// (same batch, same model state) at the weights as they then are. Adds lambda * H sign(g)
// to the gradients of `weights`, leaves the other parameters' gradients as they were and
// the weights bit for bit as they were, and returns the penalty lambda * ||g||_1 (g over
// `weights`). Throws std::invalid_argument for bad options or a weight without a gradient.
double add_gradient_l1(const std::vector<Variable>& params, const std::vector<Variable>& weights,
                       const GradL1Options& options, const std::function<void()>& recompute);

}  // namespace crayon
