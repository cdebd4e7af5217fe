#pragma once
// Plain-loop reference kernels: slow, obviously correct, kept as test oracles for the
// fast paths (OpenBLAS sgemm, im2col convolution). Accumulate in double.
#include "core/ops_conv.h"
#include "core/tensor.h"

namespace crayon::reference {

Tensor matmul(const Tensor& a, const Tensor& b, bool trans_a = false, bool trans_b = false);
// Direct convolution: y[b,o,oh,ow] = bias[o] + sum_{c,kh,kw} x[b,c,ih,iw] * w[o,c,kh,kw].
Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor& bias, const Conv2dParams& p = {});
// Its gradients for an output gradient dy, term by term from the same sum:
// dx[b,c,ih,iw] = sum of dy[b,o,oh,ow] * w[o,c,kh,kw] and dw[o,c,kh,kw] = sum of
// dy[b,o,oh,ow] * x[b,c,ih,iw] over the (oh, ow, kh, kw) with ih = oh*stride - pad + kh (and
// likewise iw) inside the input.
struct Conv2dGrads {
  Tensor dx, dw;
};
Conv2dGrads conv2d_backward(const Tensor& x, const Tensor& w, const Tensor& dy, const Conv2dParams& p = {});

}  // namespace crayon::reference
