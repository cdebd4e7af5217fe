// The AVX-512 float micro-kernel: a 12 x 32 tile of C in 24 zmm accumulators; each k step loads
// two vectors of the B panel and broadcasts twelve values of the A panel (24 FMAs on 2 loads +
// 12 broadcasts, so the two FMA ports set the pace). Fewer rows run the same loop unrolled for
// that count; fewer columns use masked loads and stores of C.
#include "core/sgemm_kernels.h"

#ifdef CRAYON_SGEMM_X86
#include "core/simd.h"  // <immintrin.h>

#define CRAYON_TARGET_AVX512F __attribute__((target("avx512f")))

#include <cstdint>

namespace crayon::sgemm_detail {

namespace {

constexpr int MR = kAvx512Tile.mr;

template <int R>
CRAYON_TARGET_AVX512F void tile(int kc, const float* ap, const float* bp, int64_t ldbp, int cols, float alpha, float beta, float* c,
                                int64_t ldc) {
  __m512 acc0[R], acc1[R];
  CRAYON_SGEMM_UNROLL
  for (int r = 0; r < R; ++r) acc0[r] = acc1[r] = _mm512_setzero_ps();
  for (int k = 0; k < kc; ++k) {
    const __m512 b0 = _mm512_loadu_ps(bp + k * ldbp), b1 = _mm512_loadu_ps(bp + k * ldbp + 16);
    CRAYON_SGEMM_UNROLL
    for (int r = 0; r < R; ++r) {
      const __m512 a = _mm512_set1_ps(ap[k * MR + r]);
      acc0[r] = _mm512_fmadd_ps(a, b0, acc0[r]);
      acc1[r] = _mm512_fmadd_ps(a, b1, acc1[r]);
    }
  }
  const __mmask16 m0 = cols >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << cols) - 1);
  const __mmask16 m1 = cols >= 32 ? __mmask16(0xFFFF) : cols <= 16 ? __mmask16(0) : __mmask16((1u << (cols - 16)) - 1);
  const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
  CRAYON_SGEMM_UNROLL
  for (int r = 0; r < R; ++r) {
    float* row = c + r * ldc;
    __m512 v0 = _mm512_mul_ps(va, acc0[r]), v1 = _mm512_mul_ps(va, acc1[r]);
    if (beta != 0.f) {
      v0 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m0, row), v0);
      v1 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m1, row + 16), v1);
    }
    _mm512_mask_storeu_ps(row, m0, v0);
    _mm512_mask_storeu_ps(row + 16, m1, v1);
  }
}

// Dot-product tile: RI rows of A against RJ rows of B, 16 lanes of k at a time (the tail
// masked), then one horizontal sum per element.
template <int RI, int RJ>
CRAYON_TARGET_AVX512F void dot(int k, const float* a, int64_t lda, const float* b, int64_t ldb, float alpha, float beta,
                               float* c, int64_t ldc) {
  __m512 acc[RI][RJ];
  CRAYON_SGEMM_UNROLL
  for (int i = 0; i < RI; ++i)
    CRAYON_SGEMM_UNROLL
    for (int j = 0; j < RJ; ++j) acc[i][j] = _mm512_setzero_ps();
  for (int p = 0; p < k; p += 16) {
    const __mmask16 m = k - p >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (k - p)) - 1);
    __m512 bv[RJ];
    CRAYON_SGEMM_UNROLL
    for (int j = 0; j < RJ; ++j) bv[j] = _mm512_maskz_loadu_ps(m, b + j * ldb + p);
    CRAYON_SGEMM_UNROLL
    for (int i = 0; i < RI; ++i) {
      const __m512 av = _mm512_maskz_loadu_ps(m, a + i * lda + p);
      CRAYON_SGEMM_UNROLL
      for (int j = 0; j < RJ; ++j) acc[i][j] = _mm512_fmadd_ps(av, bv[j], acc[i][j]);
    }
  }
  CRAYON_SGEMM_UNROLL
  for (int i = 0; i < RI; ++i)
    CRAYON_SGEMM_UNROLL
    for (int j = 0; j < RJ; ++j) {
      const float v = alpha * _mm512_reduce_add_ps(acc[i][j]);
      c[i * ldc + j] = beta == 0.f ? v : v + beta * c[i * ldc + j];
    }
}

template <int RI>
CRAYON_TARGET_AVX512F void dot_rows(int k, const float* a, int64_t lda, const float* b, int64_t ldb, int cols,
                                    float alpha, float beta, float* c, int64_t ldc) {
  switch (cols) {
    case 1: return dot<RI, 1>(k, a, lda, b, ldb, alpha, beta, c, ldc);
    case 2: return dot<RI, 2>(k, a, lda, b, ldb, alpha, beta, c, ldc);
    case 3: return dot<RI, 3>(k, a, lda, b, ldb, alpha, beta, c, ldc);
    default: return dot<RI, 4>(k, a, lda, b, ldb, alpha, beta, c, ldc);
  }
}

}  // namespace

void dot_avx512(int k, const float* a, int64_t lda, const float* b, int64_t ldb, int rows, int cols, float alpha,
                float beta, float* c, int64_t ldc) {
  switch (rows) {
    case 1: return dot_rows<1>(k, a, lda, b, ldb, cols, alpha, beta, c, ldc);
    case 2: return dot_rows<2>(k, a, lda, b, ldb, cols, alpha, beta, c, ldc);
    case 3: return dot_rows<3>(k, a, lda, b, ldb, cols, alpha, beta, c, ldc);
    default: return dot_rows<4>(k, a, lda, b, ldb, cols, alpha, beta, c, ldc);
  }
}

void tile_avx512(int kc, const float* ap, const float* bp, int64_t ldbp, int rows, int cols, float alpha, float beta, float* c,
                 int64_t ldc) {
  switch (rows) {
    case 1: return tile<1>(kc, ap, bp, ldbp, cols, alpha, beta, c, ldc);
    case 2: return tile<2>(kc, ap, bp, ldbp, cols, alpha, beta, c, ldc);
    case 3: return tile<3>(kc, ap, bp, ldbp, cols, alpha, beta, c, ldc);
    case 4: return tile<4>(kc, ap, bp, ldbp, cols, alpha, beta, c, ldc);
    case 5: return tile<5>(kc, ap, bp, ldbp, cols, alpha, beta, c, ldc);
    case 6: return tile<6>(kc, ap, bp, ldbp, cols, alpha, beta, c, ldc);
    case 7: return tile<7>(kc, ap, bp, ldbp, cols, alpha, beta, c, ldc);
    case 8: return tile<8>(kc, ap, bp, ldbp, cols, alpha, beta, c, ldc);
    case 9: return tile<9>(kc, ap, bp, ldbp, cols, alpha, beta, c, ldc);
    case 10: return tile<10>(kc, ap, bp, ldbp, cols, alpha, beta, c, ldc);
    case 11: return tile<11>(kc, ap, bp, ldbp, cols, alpha, beta, c, ldc);
    default: return tile<12>(kc, ap, bp, ldbp, cols, alpha, beta, c, ldc);
  }
}

}  // namespace crayon::sgemm_detail

#endif  // CRAYON_SGEMM_X86
