#pragma once
// KURE, the kurtosis regularizer (Shkolnik et al., "Robust Quantization: One Model to Rule
// Them All", NeurIPS 2020, eq. 7-8): a penalty that pushes each layer's weights toward a
// uniform distribution, whose kurtosis is 1.8, because uniform weights lose the least to a
// uniform grid whose step is set by the range (a heavy-tailed layer spends its levels on
// a few outliers).
//
//     Kurt(W) = mean(((w - mu) / sigma)^4),   mu, sigma^2: the mean and (biased) variance
//     R_KURE  = lambda * (1/L) * sum over the L layers of (Kurt(W_l) - 1.8)^2
//
// Written with core's autograd ops (mean, sub, mul, div), so backward is autograd's and
// the gradient check covers it; the trainer adds it to the loss before backward.
#include <vector>

#include "core/variable.h"

namespace crayon {

inline constexpr float kUniformKurtosis = 1.8f;

// w: any shape with at least 2 elements, not all equal -> shape ().
Variable kurtosis(const Variable& w);

// lambda * mean over the given tensors of (kurtosis - target)^2, shape (). Throws
// std::invalid_argument for no tensors or a lambda that is not finite and > 0.
Variable kure_penalty(const std::vector<Variable>& weights, float lambda, float target = kUniformKurtosis);

}  // namespace crayon
