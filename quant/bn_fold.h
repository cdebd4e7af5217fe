#pragma once
// Batch-norm folding (Jacob et al. 2018, sec. 3.2; Krishnamoorthi 2018, sec. 3.2): the
// integer engine has no batch norm, so a BN after a conv (or linear) is merged into it.
// In eval mode BN is an affine map per output channel c, with the running statistics:
//
//     y_c = gamma_c * (z_c - mu_c) / sqrt(var_c + eps) + beta_c,    z = conv(x, w) + b
//
// so with k_c = gamma_c / sqrt(var_c + eps)
//
//     w'_c = k_c * w_c              (the whole filter of output channel c)
//     b'_c = beta_c + (b_c - mu_c) * k_c        (b = 0 for a conv without bias)
//
// gives conv(x, w') + b' = y exactly (up to float rounding) for every x: the folded model's
// eval outputs equal the original's. Training-mode BN (batch statistics) is NOT an affine
// map of fixed coefficients, so folding uses the running statistics; see quant/qat.h for
// how QAT uses this.
#include "nn/sequential.h"

namespace crayon {

// Replaces every Conv2d or Linear immediately followed by a BatchNorm with one folded
// Conv2d / Linear (with a bias, even if the original had none) and removes the BN, in
// place; the model keeps its training mode. A BN after anything else is left as it is.
// Returns the number of BNs folded.
//
// Sequential has no replace/erase, so the folded layer list is assigned to the model
// (model = Sequential(layers)): other handles to the model see the change, but handles to
// the old child layers keep the old, unfolded layers.
int fold_batchnorm(Sequential& model);

}  // namespace crayon
