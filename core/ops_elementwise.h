#pragma once
// Elementwise ops. Binary ops broadcast NumPy-style (shapes aligned from the right, a dim
// of 1 stretches); the gradient of a broadcast operand is summed back to its shape.
#include "core/rng.h"
#include "core/variable.h"

namespace crayon {

Shape broadcast_shapes(const Shape& a, const Shape& b);  // throws naming both shapes
Tensor sum_to_shape(const Tensor& g, const Shape& shape); // reverse of broadcasting

Variable add(const Variable& a, const Variable& b);
Variable sub(const Variable& a, const Variable& b);
Variable mul(const Variable& a, const Variable& b);
Variable div(const Variable& a, const Variable& b);
Variable add(const Variable& a, float s);
Variable mul(const Variable& a, float s);

Variable neg(const Variable& x);
Variable exp(const Variable& x);
Variable log(const Variable& x);
Variable sqrt(const Variable& x);
Variable pow(const Variable& x, float p);
Variable abs(const Variable& x);      // d/dx at 0 taken as 0
Variable clamp(const Variable& x, float lo, float hi);  // gradient 1 on [lo, hi] (inclusive)
Variable relu(const Variable& x);     // gradient 0 at x = 0
Variable relu6(const Variable& x);    // min(max(0, x), 6); gradient 1 on (0, 6) only
Variable sigmoid(const Variable& x);
Variable tanh(const Variable& x);

// Inverted dropout: in training, zero each element with probability p and scale the rest
// by 1/(1-p), so eval (identity) needs no rescaling. Draws from the caller's rng.
Variable dropout(const Variable& x, float p, bool training, Rng& rng);

inline Variable operator+(const Variable& a, const Variable& b) { return add(a, b); }
inline Variable operator-(const Variable& a, const Variable& b) { return sub(a, b); }
inline Variable operator*(const Variable& a, const Variable& b) { return mul(a, b); }
inline Variable operator/(const Variable& a, const Variable& b) { return div(a, b); }
inline Variable operator-(const Variable& a) { return neg(a); }
inline Variable operator+(const Variable& a, float s) { return add(a, s); }
inline Variable operator-(const Variable& a, float s) { return add(a, -s); }
inline Variable operator*(const Variable& a, float s) { return mul(a, s); }
inline Variable operator*(float s, const Variable& a) { return mul(a, s); }
inline Variable operator/(const Variable& a, float s) { return mul(a, 1.f / s); }

}  // namespace crayon
