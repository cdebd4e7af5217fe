#pragma once
// Internal to conv2d (core/ops_conv.cpp): Winograd's minimal filtering F(2x2, 3x3) (Lavin and
// Gray, "Fast Algorithms for Convolutional Neural Networks", 2016) for 3x3 convolutions at
// stride 1 and padding 1, on AVX-512. Each output tile of 2x2 reads a 4x4 input tile d (tiles
// overlap by 2) and is
//   Y = A^T [ (G g G^T) (.) (B^T d B) ] A       (.) elementwise over the 16 positions xi
// so one channel pair costs 16 multiplications per tile instead of 36. Over channels the
// elementwise products become 16 independent matrix products,
//   M[xi](k, tile) = sum over c of U[xi](c, k) * V[xi](c, tile),
// computed like the direct kernels: a block of 8 output channels x 32 tiles held in registers,
// one broadcast of U per channel, 16 tiles per vector. The input gradient is the same
// convolution of dy with the weights flipped and transposed (padding 1 again), added into dx.
// The weight gradient is G^T [ sum over tiles of (B^T d B) (.) (A dY A^T) ] G, the sum over
// tiles again 16 matrix products, vectorized over output channels (32 to a register pair)
// with the dy tiles transposed (conv_winograd.cpp).
//
// Tiles are numbered row-major inside an image, 16 to a vector; the input transform reads
// four tiles of a row at a time, so the shapes taken have W % 8 == 0 and (H/2)*(W/2) % 16 == 0
// (CIFAR's 32, 16 and 8 all do): a vector of tiles never straddles two images.
#include <cstdint>

#include "core/conv_direct.h"
#include "core/sgemm.h"

namespace crayon::conv_detail {

// 3x3, stride 1, padding 1, the tile conditions above, and the AVX-512 float path.
bool winograd_applies(const DirectGeom& g, FloatIsa isa);

// y = bias + conv(x, w) for a batch of B images, threads splitting the batch. bias may be null.
void winograd_forward(const DirectGeom& g, int64_t B, const float* x, const float* w, const float* bias, float* y);
// dx += the input gradient of dy.
void winograd_input_grad(const DirectGeom& g, int64_t B, const float* dy, const float* w, float* dx);
// dw += the weight gradient. Each thread sums its images apart and the parts are added in
// order: a given thread count always gives the same bits.
void winograd_weight_grad(const DirectGeom& g, int64_t B, const float* x, const float* dy, float* dw);

}  // namespace crayon::conv_detail
