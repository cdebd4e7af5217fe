#pragma once
// Shape ops. reshape and flatten are views (no copy); transpose copies, since storage is
// always contiguous.
#include "core/variable.h"

namespace crayon {

Variable reshape(const Variable& x, const Shape& shape);  // one dim may be -1
Variable flatten(const Variable& x, int start_dim = 1);   // (B, C, H, W) -> (B, C*H*W)
Variable transpose(const Variable& x, int dim0, int dim1);

}  // namespace crayon
