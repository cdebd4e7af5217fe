#pragma once
// int8 x int8 -> int32 matrix multiply, the one kernel under every integer layer
// (gemmlowp's core: exact integer dot products; scaling happens later, quant/int8/requant.h).
//
//     c[i][j] = sum_k a[i][k] * w[j][k]          a: (M, K) int8, w: (N, K) int8 -> c: (M, N) int32
//
// a holds activations (any int8), w the weights: symmetric, narrow range [-127, 127] (the
// TFLite int8 spec). Every path returns the exact sum, so all paths agree bit for bit.
// Three paths, picked at run time from what the CPU supports (the project is compiled for
// baseline x86-64; the fast kernels carry their own target attributes):
//   avx512vnni  vpdpbusd multiplies unsigned by signed bytes, so a is flipped to
//               a + 128 = a ^ 0x80 (in [0, 255]) and 128 * rowsum(w[j]) is subtracted at the
//               end (the "+128 trick", oneDNN's "Nuances of int8 computations" calls it the
//               s8s8 compensation; intermediate sums wrap mod 2^32, the result is exact).
//               The flip happens once per tile of rows, as they are copied into a buffer
//               zero-padded to whole 4-byte groups (every path reads a through that buffer).
//   avx2        vpmaddubsw (u8 x s8, pairs summed in int16, saturating) then vpmaddwd by 1s.
//               With a + 128 a pair can reach 2 * 255 * 127 = 64770 and saturate, so instead
//               the sign moves from a to w: |a| * (w * sign(a)) = a * w (vpsignb), |a| <= 128
//               and |w| <= 127 keep a pair within 2 * 128 * 127 = 32512 < 2^15 (the sign trick
//               of ggml's mul_sum_i8_pairs_float). This is why w must avoid -128: its negation
//               does not fit.
//   portable    plain C++ over the same packed layout.
// The environment variable CRAYON_INT8_ISA (portable, avx2, avx512vnni) picks the path at
// start-up; set_int8_isa() changes it later (tests, benchmarks).
#include <cstdint>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "quant/int8/requant.h"

namespace crayon {

enum class Int8Isa { portable, avx2, avx512vnni };
const char* int8_isa_name(Int8Isa isa);  // "portable", "avx2", "avx512vnni"
Int8Isa parse_int8_isa(const std::string& name);  // throws std::invalid_argument naming the choices
bool int8_isa_supported(Int8Isa isa);
Int8Isa best_int8_isa();
Int8Isa int8_isa();  // the path in use: CRAYON_INT8_ISA if set, else best_int8_isa()
void set_int8_isa(Int8Isa isa);  // throws std::invalid_argument if this CPU cannot run it

// Weights in the kernels' layout: output channels in blocks of 32 (zero-padded), and within a
// block, for each group of 4 consecutive k (k zero-padded to a multiple of 4), 32 channels x
// 4 bytes = 128 bytes: data[((block * groups + g) * 32 + c) * 4 + t] = w[block * 32 + c][4g + t].
// One group is then two AVX-512 or four AVX2 registers, one lane per channel, each lane the
// 4-byte dot product of vpdpbusd / vpmaddubsw+vpmaddwd.
struct PackedWeights {
  int64_t n = 0, k = 0;          // output channels, reduction length
  Shape shape;                   // the unpacked weight's shape, e.g. (O, C, KH, KW) or (N, K)
  std::vector<int8_t> data;      // blocks() * groups() * 128 bytes
  std::vector<int32_t> row_sums; // blocks() * 32: sum_k w[j][k] (0 for padding channels)
  int64_t groups() const { return (k + 3) / 4; }
  int64_t blocks() const { return (n + 31) / 32; }
};

// w: (n, k) row-major int8 (a Linear weight (out, in), or a conv weight OIHW as (O, C*KH*KW)).
// Throws std::invalid_argument for n or k < 1, k > kMaxGemmK, or a weight of -128.
// kMaxGemmK keeps every exact sum within int32: 128 * 127 * k <= 2^31 - 1.
inline constexpr int64_t kMaxGemmK = 132104;
PackedWeights pack_weights(const int8_t* w, int64_t n, int64_t k);
// w: int8 tensor (N, ...) -> packed as (N, numel / N), shape kept.
PackedWeights pack_weights(const Tensor& w);

// a: (m, k) row-major, w packed (N, k) -> c: (m, N) row-major. Threads over blocks of rows
// and of output channels (core/parallel.h); m may be 0.
void gemm_s8(const int8_t* a, int64_t m, int64_t k, const PackedWeights& w, int32_t* c);
// The same through a chosen path (must be supported).
void gemm_s8(const int8_t* a, int64_t m, int64_t k, const PackedWeights& w, int32_t* c, Int8Isa isa);

// The same product with the output stage fused into the kernels: each tile of sums is finished
// while it is still in registers, instead of a second pass over an int32 matrix.
//   gemm_s8_acc      c (m, N) int32 = a x w^T + bias, each sum saturated to int32 (bias may be
//                    null): the accumulators of a logits layer
//   gemm_s8_requant  y (m, N) int8 = requantize(a x w^T, bias, stage) (quant/int8/requant.h), bit
//                    for bit
// Threads as gemm_s8.
void gemm_s8_acc(const int8_t* a, int64_t m, int64_t k, const PackedWeights& w, const int32_t* bias, int32_t* c,
                 Int8Isa isa = int8_isa());
void gemm_s8_requant(const int8_t* a, int64_t m, int64_t k, const PackedWeights& w, const int32_t* bias,
                     const OutputStage& stage, int8_t* y, Int8Isa isa = int8_isa());

// Convolution's product the other way round, channels x pixels, so the output is already a
// plane per channel (NCHW) and one vector holds 16 pixels of one channel (a LeNet layer has 6
// or 16 channels, which would fill a 32-channel block poorly):
//     y[j][p] = requantize(sum_k w[j][k] * x[k][p], bias[j], stage)   for j < N, p < np
// y has row stride ldy. The patches x (k, np) come in their own layout, made by pack_patches
// from k rows (rows[r] points at the r-th entry of the windows of all np pixels, readable
// for patch_stride(np) bytes; the extra bytes only feed outputs that are not stored):
// out[(g * ldp + p) * 4 + t] = rows[4g + t][p], ldp = patch_stride(np), the 4-byte groups of
// one pixel side by side as the weights' are (rows past k read as 0), and for the VNNI path
// flipped to x + 128 (the unsigned operand). Runs on the calling thread.
inline int64_t patch_stride(int64_t np) { return (np + 31) / 32 * 32; }
inline int64_t patch_bytes(int64_t k, int64_t np) { return (k + 3) / 4 * 4 * patch_stride(np); }
void pack_patches(const int8_t* const* rows, int64_t k, int64_t np, Int8Isa isa, int8_t* out);
void gemm_s8_patches(const PackedWeights& w, const int8_t* x, int64_t np, const int32_t* bias,
                     const OutputStage& stage, int8_t* y, int64_t ldy, Int8Isa isa);

// The same product for a conv followed by a 2x2 max pool, pooling before the output stage:
// requantize_value is nondecreasing in acc when the multiplier is >= 0 (every multiplier
// quantize_multiplier makes), so max(rq(a), rq(b)) = rq(max(a, b)), and only a quarter of the
// sums need the output stage. y (N, (np + 1) / 2) int32, row stride ldy:
//     y[j][p / 2] = max(s[j][p], s[j][p + 1]),  s[j][p] = sum_k w[j][k] * x[k][p],  p even
// (for an odd np the last pair's second sum is of a pixel past np: its value is unspecified).
void gemm_s8_patches_pairmax(const PackedWeights& w, const int8_t* x, int64_t np, int32_t* y, int64_t ldy,
                             Int8Isa isa);
// The pool's other half and the output stage, for sums paired as above: rows 2r and 2r + 1
// of each channel's pairs, their max, requantized. For j < n, r < rows, i < len:
//     y[(j * rows + r) * len + i] = requantize_value(max(a[j][2r][i], a[j][2r + 1][i]), bias[j],
//                                                    stage.multiplier[j], ...)
// a[j][row] = acc + j * lda + row * ld_row; bias may be null. k >= 0 promises sums of k int8
// products (|acc| <= 128 * 127 * k), which lets the kernel skip the saturation of acc + bias
// where it cannot happen; k < 0 promises nothing.
void requantize_max_rows(const int32_t* acc, int64_t n, int64_t rows, int64_t len, int64_t lda, int64_t ld_row,
                         int64_t k, const int32_t* bias, const OutputStage& stage, int8_t* y,
                         Int8Isa isa = int8_isa());

// The oracle: a plain triple loop over unpacked w (n, k).
void gemm_s8_reference(const int8_t* a, int64_t m, int64_t k, const int8_t* w, int64_t n, int32_t* c);

}  // namespace crayon
