#pragma once
// 2-D convolution and pooling on NCHW tensors. Shape letters: B batch, C input channels,
// O output channels, H/W input height/width, KH/KW kernel, OH/OW output.
// OH = (H + 2*pad_h - KH) / stride_h + 1 (floor), and likewise for W.
#include "core/variable.h"

namespace crayon {

struct Conv2dParams {
  int stride_h = 1, stride_w = 1;
  int pad_h = 0, pad_w = 0;
};

struct Pool2dParams {
  int kernel_h = 2, kernel_w = 2;
  int stride_h = 2, stride_w = 2;
  int pad_h = 0, pad_w = 0;
};

// The input rows [h0, h1) and columns [w0, w1) under output cell (oh, ow) of a pool over an
// (H, W) plane, clipped to the plane (padding cells dropped), so window loops need no tests.
struct PoolWindow {
  int64_t h0, h1, w0, w1;
};
inline PoolWindow pool_window(const Pool2dParams& p, int64_t H, int64_t W, int64_t oh, int64_t ow) {
  const int64_t ih = oh * p.stride_h - p.pad_h, iw = ow * p.stride_w - p.pad_w;
  return {ih > 0 ? ih : 0, ih + p.kernel_h < H ? ih + p.kernel_h : H, iw > 0 ? iw : 0,
          iw + p.kernel_w < W ? iw + p.kernel_w : W};
}

// x: (B, C, H, W), w: (O, C, KH, KW), bias: (O,) or undefined -> (B, O, OH, OW).
// Three algorithms: at stride 1 on the AVX2 and AVX-512 paths, the direct kernels of
// core/conv_direct.h (no im2col buffer; the input gradient is the same kernel, the weight
// gradient its own); for 3x3 at padding 1 on AVX-512, Winograd F(2x2, 3x3) (core/
// conv_winograd.h) for the forward pass and both gradients; otherwise im2col + one sgemm
// per chunk of images, backward two sgemms + col2im.
Variable conv2d(const Variable& x, const Variable& w, const Variable& bias, const Conv2dParams& p = {});

// x: (B, C, H, W) -> (B, C, OH, OW). Padding cells never win a max.
Variable max_pool2d(const Variable& x, const Pool2dParams& p);
// Average over the window, padding cells counted as zeros (PyTorch's count_include_pad).
Variable avg_pool2d(const Variable& x, const Pool2dParams& p);

// Which algorithm conv2d uses: `automatic` picks per shape (core/ops_conv.cpp says how);
// `gemm`, `direct` and `winograd` force one, for tests and benchmarks, falling back where it
// does not apply (winograd to direct, direct to gemm).
enum class ConvAlgo { automatic, gemm, direct, winograd };
void set_conv_algo(ConvAlgo algo);
const char* conv_algo_name(ConvAlgo algo);  // "automatic", "gemm", "direct", "winograd"
ConvAlgo conv_algo();
// The algorithm conv2d runs for these shapes under the current setting and float path
// (gemm, direct or winograd; shapes as conv2d takes them, already valid).
ConvAlgo conv2d_algo_for(const Shape& x, const Shape& w, const Conv2dParams& p);

// Output size of a sliding window; throws (naming `what` and the numbers) if empty.
int64_t window_out_size(int64_t in, int kernel, int stride, int pad, const char* what);

// Unfold / fold, exposed for the reference kernels and the integer engine to share.
// cols: (C*KH*KW, OH*OW) for one image.
void im2col(const float* x, int64_t C, int64_t H, int64_t W, int KH, int KW, const Conv2dParams& p,
            int64_t OH, int64_t OW, float* cols, int64_t ld_cols);
void col2im_add(const float* cols, int64_t C, int64_t H, int64_t W, int KH, int KW, const Conv2dParams& p,
                int64_t OH, int64_t OW, float* x, int64_t ld_cols);

}  // namespace crayon
