#pragma once
// Internal to conv2d (core/ops_conv.cpp): the direct convolution for stride 1, with no
// im2col buffer. Files:
//   conv_direct.h          this interface: the geometry, the tasks, the per-ISA entry points
//   conv_direct_kernels.h  the kernels, written once over a vector type V (included only by
//                          the two files below, each defining V and its target attribute)
//   conv_direct_avx2.cpp   V = 8 floats (__m256, AVX2 + FMA)
//   conv_direct_avx512.cpp V = 16 floats (__m512, AVX-512F)
//
// Forward, for one image: the input is copied once into a zero-bordered plane xp (C, Hp, Wp)
// and each output row of OB channels x NV vectors of output columns is held in registers
// while the loop runs over (c, kh, kw): one vector load of xp per (kw, vector), one
// broadcast weight per channel, OB x NV FMAs. Weights are packed as wp[(c*KH + kh)*KW + kw]
// [o], so the OB weights of a step are adjacent (channels padded with zeros to a multiple of
// OB). The input gradient is the same kernel: dx = dy, zero-bordered by K-1-pad, correlated
// with the weights flipped in kh, kw and with o and c swapped, added into dx.
//
// Weight gradient, for a group of zero-bordered images: for each (c, kh) and block of OB
// output channels, OB x KW vector accumulators over the output columns, summed over every
// row of every image in the group, then reduced across lanes and added to dw.
#include <cstdint>

#include "core/ops_conv.h"
#include "core/sgemm.h"
#include "core/sgemm_kernels.h"  // CRAYON_SGEMM_X86

namespace crayon::conv_detail {

// A stride-1 convolution of one image: x (C, H, W) -> y (O, OH, OW).
struct DirectGeom {
  int64_t C, H, W, O, OH, OW;
  int KH, KW, pad_h, pad_w;
};

// The zero-bordered plane an image is copied into: pad_h rows above and below, pad_w
// columns left, and on the right enough for whole-vector loads past the last output column.
struct PaddedPlane {
  int64_t Hp, Wp;
};
PaddedPlane padded_plane(int64_t H, int64_t W, int64_t OW, int KW, int pad_h, int pad_w, int lanes);
// x (C, H, W) into xp (C, Hp, Wp), its top-left corner at (pad_h, pad_w), zeros around it
// (Hp = H + 2*pad_h, Wp >= W + pad_w).
void pad_into(const float* x, int64_t C, int64_t H, int64_t W, int pad_h, int pad_w, PaddedPlane pp, float* xp);

// One image's output rows (forward, or the input gradient seen as a forward).
struct FwdTask {
  const float* xp;     // (C, Hp, Wp), zero-bordered
  int64_t Hp, Wp;
  const float* wp;     // (C*KH*KW, o_stride), o fastest, zero past O
  int64_t o_stride;    // O rounded up to a multiple of ob
  int ob;              // output channels per register block (forward_block() chose it)
  const float* bias;   // (O,) or null
  bool accumulate;     // y += conv (bias ignored) instead of y = bias + conv
  float* y;            // (O, OH, OW)
  int64_t C, O, OH, OW;
  int KH, KW;
};

// A group of images' contribution to the weight gradient.
struct DwTask {
  const float* xp;    // (n, C, Hp, Wp), zero-bordered
  int64_t Hp, Wp;
  const float* dy;    // (n, O, OH, OW)
  int64_t n;
  float* dw;          // (O, C, KH, KW), added to
  int64_t C, O, OH, OW;
  int KH, KW;
};

struct DirectKernels {
  int lanes;                       // floats per vector
  int (*forward_block)(int64_t O, int64_t OW);  // channels per register block for this shape
  void (*forward)(const FwdTask&);
  void (*weight_grad)(const DwTask&);
};

constexpr int kMaxDirectKernel = 7;  // KW the weight-gradient kernel is built for

#ifdef CRAYON_SGEMM_X86
extern const DirectKernels kDirectAvx2, kDirectAvx512;
#endif

// The kernels of a float path, or null where it has none (blas).
const DirectKernels* direct_kernels(FloatIsa isa);
// Whether the direct kernels take a convolution: stride 1, padding at most kernel - 1 (so the
// input gradient's border is not negative) and KW <= kMaxDirectKernel.
bool direct_applies(int KH, int KW, const Conv2dParams& p);

// The three passes over a batch of B images, threads splitting the batch. Pad from g.
void direct_forward(const DirectKernels& k, const DirectGeom& g, int64_t B, const float* x, const float* w,
                    const float* bias, float* y);
// dx += the input gradient of dy.
void direct_input_grad(const DirectKernels& k, const DirectGeom& g, int64_t B, const float* dy, const float* w,
                       float* dx);
// dw += the weight gradient. Each thread sums its images into its own buffer, the buffers
// are added in order: a given thread count always gives the same bits.
void direct_weight_grad(const DirectKernels& k, const DirectGeom& g, int64_t B, const float* x, const float* dy,
                        float* dw);

}  // namespace crayon::conv_detail
