#pragma once
// Plain-loop reference kernels: slow, obviously correct, kept as test oracles for the
// fast paths (OpenBLAS sgemm, im2col convolution). Accumulate in double.
#include "core/ops_conv.h"
#include "core/tensor.h"

namespace crayon::reference {

Tensor matmul(const Tensor& a, const Tensor& b, bool trans_a = false, bool trans_b = false);
// Direct convolution: y[b,o,oh,ow] = bias[o] + sum_{c,kh,kw} x[b,c,ih,iw] * w[o,c,kh,kw].
Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor& bias, const Conv2dParams& p = {});

}  // namespace crayon::reference
