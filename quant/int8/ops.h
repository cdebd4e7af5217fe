#pragma once
// Integer layers of the int8 inference engine: no float arithmetic inside. Shape letters as
// in core/ops_conv.h: B batch, C input channels, O output channels, H/W, KH/KW, OH/OW.
//
// Every activation is int8 on an affine grid (s, z): real = s * (q - z). A linear or conv
// layer accumulates exactly in int32,
//     acc[c] = sum_k (q_x - z_in) * q_w[c,k] + bias[c]          (real: s_in * s_w[c] * acc[c])
// and an OutputStage (quant/int8/requant.h) maps acc to the output grid with the fused
// activation clamp. The input zero point is folded into the bias (fold_input_zero_point), so
// the GEMM multiplies raw q_x; convolution pads with z_in, which is real 0 and adds nothing
// once folded. Weights are packed once (pack_weights) and must be symmetric, in [-127, 127].
#include <cstdint>
#include <span>

#include "core/ops_conv.h"
#include "core/tensor.h"
#include "quant/int8/gemm.h"
#include "quant/int8/requant.h"

namespace crayon {

// x: (B, K) int8 on (s_in, z_in), w: packed (N, K), bias: (N,) int32 on s_in * s_w[c] or
// empty -> (B, N) int8 on (s_out, out.zero_point), out.multiplier[c] = s_in * s_w[c] / s_out.
Tensor linear_s8(const Tensor& x, int32_t in_zero_point, const PackedWeights& w, std::span<const int32_t> bias,
                 const OutputStage& out);
// x: (B, K) int8, w: packed (N, K), bias: (N,) or empty -> (B, N) int32 acc as above, for
// the last layer: logits[b, c] = s_in * s_w[c] * acc[b, c].
Tensor linear_s8_acc(const Tensor& x, int32_t in_zero_point, const PackedWeights& w, std::span<const int32_t> bias);

// x: (B, C, H, W) int8, w: packed from (O, C, KH, KW), bias: (O,) or empty -> (B, O, OH, OW)
// int8. Computed as channels x pixels (gemm_s8_patches), so each output plane comes out whole
// with the output stage fused: stride 1 reads the windows in place from a padded copy of the
// image (no im2col), other strides go through im2col. Threads over images and runs of output
// rows; patches per thread stay near 256 KiB.
Tensor conv2d_s8(const Tensor& x, int32_t in_zero_point, const PackedWeights& w, std::span<const int32_t> bias,
                 const Conv2dParams& p, const OutputStage& out);

// maxpool2d_s8(conv2d_s8(x, ...), pool), bit for bit, without the convolution's output
// tensor: each image's conv planes are pooled while they are in cache (Int8Model runs a conv
// followed by a max pool this way). A 2x2 stride-2 pool after a stride-1 conv pools the int32
// sums before the output stage (gemm_s8_patches_pairmax), which then runs on a quarter of them.
Tensor conv2d_maxpool_s8(const Tensor& x, int32_t in_zero_point, const PackedWeights& w, std::span<const int32_t> bias,
                         const Conv2dParams& p, const OutputStage& out, const Pool2dParams& pool);

// x: (B, C, H, W) int8 -> (B, C, OH, OW) int8 on the same grid: max commutes with the
// monotone map q -> s * (q - z), so it is exact. Padding cells never win (padding at most
// half the kernel, as max_pool2d).
Tensor maxpool2d_s8(const Tensor& x, const Pool2dParams& p);
// x: (B, C, H, W) int8 on (s_in, z_in) -> (B, C, OH, OW) int8 on (s_out, z_out):
//     q_y = clamp(z_out + R(sum_window (q_x - z_in), m), act_min, act_max),
//     m = quantize_multiplier(s_in / (s_out * KH * KW)); [act_min, act_max] is the output
// grid's range ([-8, 7] at 4 bits). Padding cells are real 0 and count in the divisor
// (avg_pool2d's count_include_pad).
Tensor avgpool2d_s8(const Tensor& x, int32_t in_zero_point, const Pool2dParams& p, FixedPointMultiplier m,
                    int32_t out_zero_point, int32_t act_min = -128, int32_t act_max = 127);

// Oracles for the tests: unpacked int8 weights, no GEMM, no im2col; the same integer math
// (acc = sum (q_x - z_in) q_w + bias, then multiply_by_quantized_multiplier per element).
// x: (B, K), w: (N, K) int8 -> (B, N) int8.
Tensor linear_s8_reference(const Tensor& x, int32_t in_zero_point, const Tensor& w, std::span<const int32_t> bias,
                           const OutputStage& out);
// x: (B, K), w: (N, K) int8 -> (B, N) int32 acc (the oracle of linear_s8_acc).
Tensor linear_s8_acc_reference(const Tensor& x, int32_t in_zero_point, const Tensor& w, std::span<const int32_t> bias);
// x: (B, C, H, W), w: (O, C, KH, KW) int8 -> (B, O, OH, OW) int8, seven direct loops.
Tensor conv2d_s8_reference(const Tensor& x, int32_t in_zero_point, const Tensor& w, std::span<const int32_t> bias,
                           const Conv2dParams& p, const OutputStage& out);

}  // namespace crayon
