#pragma once
// Gradient clipping by global norm, torch.nn.utils.clip_grad_norm_'s semantics:
//   norm = sqrt(sum over every gradient element of g^2)   (accumulated in double)
//   coef = max_norm / (norm + 1e-6);  if coef < 1, every gradient is multiplied by coef.
#include <vector>

#include "core/variable.h"

namespace crayon {

// Returns the norm before clipping (for logging). Parameters without a gradient are
// skipped. A non-finite norm is returned as it is and the gradients are left untouched,
// so the caller's NaN/Inf check still sees where they are. Throws std::invalid_argument
// if max_norm is negative or NaN.
float clip_grad_norm(const std::vector<Variable>& params, float max_norm);

}  // namespace crayon
