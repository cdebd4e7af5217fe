#pragma once
// Reductions over all elements (-> shape ()) or over one axis (negative axes count from
// the end; keepdim leaves a 1 in its place).
#include "core/variable.h"

namespace crayon {

Variable sum(const Variable& x);
Variable sum(const Variable& x, int axis, bool keepdim = false);
Variable mean(const Variable& x);
Variable mean(const Variable& x, int axis, bool keepdim = false);
// The gradient goes to the first maximal element (a valid subgradient, as PyTorch's
// max(dim) does for its returned index).
Variable max(const Variable& x);
Variable max(const Variable& x, int axis, bool keepdim = false);

// Split a shape around one axis: outer * n * inner == numel. Shared with softmax.
struct AxisSplit {
  int axis;
  int64_t outer, n, inner;
};
AxisSplit split_at_axis(const Shape& s, int axis, const char* op);

}  // namespace crayon
