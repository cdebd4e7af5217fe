#pragma once
// Internal to the float GEMM: included only by core/sgemm*.cpp (the interface is sgemm.h).
//   sgemm.cpp         the ISA choice, the blocking, packing and threading, the dispatch
//   sgemm_avx2.cpp    the AVX2+FMA micro-kernel (6 x 16 tile)    } x86-64 only, each function
//   sgemm_avx512.cpp  the AVX-512 micro-kernel (12 x 32 tile)     } with its own target attribute
// As in quant/int8, the files are compiled with the baseline flags (core/CMakeLists.txt says
// why) and sgemm.cpp calls a kernel only on a CPU that runs it.
//
// Packed operands, per k-block of kc steps: an A panel holds rows i of op(A) as ap[k * MR + i]
// (MR = the ISA's tile rows, rows past the matrix zero), a B panel holds columns j of op(B) as
// bp[k * ldbp + j] with ldbp = NR (columns past the matrix zero), or B itself when it is stored
// that way and the panel is full (ldbp = ldb: no copy). A kernel computes one tile of rows <= MR
// and columns <= NR: C = alpha * (A panel x B panel) + beta * C, not reading C when beta == 0.
#include <cstdint>

#if defined(__x86_64__)
#define CRAYON_SGEMM_X86 1
#endif

#define CRAYON_SGEMM_UNROLL _Pragma("GCC unroll 16")

namespace crayon::sgemm_detail {

struct TileShape {
  int mr, nr;  // the kernel's full tile
};
inline constexpr TileShape kAvx2Tile{6, 16}, kAvx512Tile{12, 32};

using TileKernel = void (*)(int kc, const float* ap, const float* bp, int64_t ldbp, int rows, int cols, float alpha,
                            float beta, float* c, int64_t ldc);

#ifdef CRAYON_SGEMM_X86
void tile_avx2(int kc, const float* ap, const float* bp, int64_t ldbp, int rows, int cols, float alpha, float beta,
               float* c, int64_t ldc);
void tile_avx512(int kc, const float* ap, const float* bp, int64_t ldbp, int rows, int cols, float alpha, float beta,
                 float* c, int64_t ldc);
#endif

// C = alpha * op(A) op(B) + beta * C for op(A) = A, op(B) = B^T: C(i, j) is the dot product of
// row i of A and row j of B, both contiguous, so nothing is packed. For the small C and long k
// of a convolution's weight gradient (k runs over every output pixel of the batch), where
// packing B would cost as much as the product. rows, cols <= kDotTile; the whole k at once.
inline constexpr int kDotTile = 4;
using DotKernel = void (*)(int k, const float* a, int64_t lda, const float* b, int64_t ldb, int rows, int cols,
                           float alpha, float beta, float* c, int64_t ldc);
#ifdef CRAYON_SGEMM_X86
void dot_avx2(int k, const float* a, int64_t lda, const float* b, int64_t ldb, int rows, int cols, float alpha,
              float beta, float* c, int64_t ldc);
void dot_avx512(int k, const float* a, int64_t lda, const float* b, int64_t ldb, int rows, int cols, float alpha,
                float beta, float* c, int64_t ldc);
#endif

}  // namespace crayon::sgemm_detail
