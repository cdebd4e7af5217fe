#pragma once
// Cross-layer equalization (Nagel et al. 2019, "Data-Free Quantization Through Weight
// Equalization and Bias Correction", sec. 4.1; the 2021 white paper, sec. 3.2).
//
// Two weight layers joined only by layers that commute with a positive per-channel scale
// (ReLU, max and average pooling, flatten, dropout),
//
//     y = W2 f(W1 x + b1) + b2,    f(s z) = s f(z) for s > 0 (per channel),
//
// compute the same function after W1's output channel c and b1_c are divided by s_c and
// W2's input channel c is multiplied by s_c. With r1_c = max|W1[c, ...]| (the output
// channel's range) and r2_c = max|W2[:, c, ...]| (the range of everything channel c feeds),
//
//     s_c = sqrt(r1_c / r2_c)    gives both ranges sqrt(r1_c r2_c),
//
// the choice that maximizes the product of the channels' precisions (the paper's eq. 10).
// A channel whose range is 0 on either side keeps s_c = 1. Through a flatten, input
// channel c of a linear layer is the block of H*W columns c*H*W ... (c+1)*H*W - 1 (the
// C, H, W order of nn/'s flatten). Chains of three or more layers are equalized pair by
// pair, and the sweep over all pairs is repeated until no scale moves by more than
// `tolerance` (relative), at most `max_iterations` times, as the paper does.
//
// ReLU6 does not commute with scaling (min(s z, 6) != s min(z, 6)). Like AIMET, crayon
// can replace it by ReLU in the pairs it equalizes (changing the float function: outputs
// above 6 are no longer clipped; the CLI reports the float accuracy after); or leave such
// pairs alone, which keeps the function exact.
//
// Per-channel weight quantization (crayon's default) already gives each output channel its
// own scale, so what equalization changes there is the *input* side of the next layer:
// each of W2's output channels is quantized on one scale, and equalization evens out the
// columns under it. With per-tensor weights it evens out the whole layer.
//
// Runs on a float model whose batch norms are folded (quant/bn_fold.h); throws
// std::invalid_argument for a model prepared for quantization or holding a batch norm.
#include <cstdint>

#include "nn/sequential.h"

namespace crayon {

enum class Relu6Policy { replace, keep };  // replace by ReLU and equalize, or skip the pair

struct EqualizeOptions {
  Relu6Policy relu6 = Relu6Policy::replace;
  int max_iterations = 20;
  double tolerance = 1e-4;
};

struct EqualizeReport {
  int pairs = 0;           // weight-layer pairs equalized
  int relu6_replaced = 0;  // ReLU6 layers replaced by ReLU
  int pairs_skipped = 0;   // pairs left alone (ReLU6 with Relu6Policy::keep)
  int iterations = 0;      // sweeps over all pairs
  // What per-tensor quantization suffers from: the spread of a layer's output-channel
  // ranges, max_c r_c / min_c r_c over its channels with r_c > 0, as a geometric mean over
  // the layers of the equalized pairs, before and after (1: even; 0 if no pair).
  double spread_before = 0, spread_after = 0;
};

// Equalizes the model in place (see the top of this file); it keeps its training mode.
EqualizeReport equalize(Sequential& model, const EqualizeOptions& options = {});

}  // namespace crayon
