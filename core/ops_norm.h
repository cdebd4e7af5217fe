#pragma once
#include "core/variable.h"

namespace crayon {

// Batch normalization over the channel axis 1 of x: (B, C) or (B, C, H, W).
// gamma, beta: (C,). running_mean / running_var: (C,) buffers, updated in place while
// training as r = (1 - momentum) * r + momentum * batch_stat, with the unbiased batch
// variance for running_var (PyTorch's convention). Training normalizes with the biased
// batch variance; eval with the running statistics.
//   xhat = (x - mu) / sqrt(var + eps),  y = gamma * xhat + beta
Variable batch_norm(const Variable& x, const Variable& gamma, const Variable& beta, Tensor& running_mean,
                    Tensor& running_var, bool training, float momentum = 0.1f, float eps = 1e-5f);

}  // namespace crayon
