// The AVX2+FMA float micro-kernel: a 6 x 16 tile of C in 12 ymm accumulators (two vectors of
// the B panel and six broadcasts of the A panel per k step), the shape BLIS uses on Haswell.
// Fewer rows run the same loop unrolled for that count; fewer columns go through a small tile
// in memory, so C is never touched past its edge.
#include "core/sgemm_kernels.h"

#ifdef CRAYON_SGEMM_X86
#include <immintrin.h>

#define CRAYON_TARGET_AVX2 __attribute__((target("avx2,fma")))

#include <cstdint>

namespace crayon::sgemm_detail {

namespace {

constexpr int MR = kAvx2Tile.mr, NR = kAvx2Tile.nr;

template <int R>
CRAYON_TARGET_AVX2 void tile(int kc, const float* ap, const float* bp, int64_t ldbp, int cols, float alpha, float beta, float* c,
                             int64_t ldc) {
  __m256 acc0[R], acc1[R];
  CRAYON_SGEMM_UNROLL
  for (int r = 0; r < R; ++r) acc0[r] = acc1[r] = _mm256_setzero_ps();
  for (int k = 0; k < kc; ++k) {
    const __m256 b0 = _mm256_loadu_ps(bp + k * ldbp), b1 = _mm256_loadu_ps(bp + k * ldbp + 8);
    CRAYON_SGEMM_UNROLL
    for (int r = 0; r < R; ++r) {
      const __m256 a = _mm256_broadcast_ss(ap + k * MR + r);
      acc0[r] = _mm256_fmadd_ps(a, b0, acc0[r]);
      acc1[r] = _mm256_fmadd_ps(a, b1, acc1[r]);
    }
  }
  const __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);
  float edge[R * NR];
  const bool full = cols == NR;
  CRAYON_SGEMM_UNROLL
  for (int r = 0; r < R; ++r) {
    float* row = c + r * ldc;
    float* out = full ? row : edge + r * NR;
    if (!full && beta != 0.f)
      for (int j = 0; j < NR; ++j) out[j] = j < cols ? row[j] : 0.f;
    __m256 v0 = _mm256_mul_ps(va, acc0[r]), v1 = _mm256_mul_ps(va, acc1[r]);
    if (beta != 0.f) {
      v0 = _mm256_fmadd_ps(vb, _mm256_loadu_ps(out), v0);
      v1 = _mm256_fmadd_ps(vb, _mm256_loadu_ps(out + 8), v1);
    }
    _mm256_storeu_ps(out, v0);
    _mm256_storeu_ps(out + 8, v1);
    if (!full)
      for (int j = 0; j < cols; ++j) row[j] = out[j];
  }
}

CRAYON_TARGET_AVX2 inline float sum8(__m256 v) {
  const __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  const __m128 t = _mm_add_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_add_ss(t, _mm_shuffle_ps(t, t, 1)));
}

// Dot-product tile: RI rows of A against RJ rows of B, 8 lanes of k at a time (the tail
// through a mask), then one horizontal sum per element.
template <int RI, int RJ>
CRAYON_TARGET_AVX2 void dot(int k, const float* a, int64_t lda, const float* b, int64_t ldb, float alpha, float beta,
                            float* c, int64_t ldc) {
  __m256 acc[RI][RJ];
  CRAYON_SGEMM_UNROLL
  for (int i = 0; i < RI; ++i)
    CRAYON_SGEMM_UNROLL
    for (int j = 0; j < RJ; ++j) acc[i][j] = _mm256_setzero_ps();
  alignas(32) static const int32_t kLanes[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
  for (int p = 0; p < k; p += 8) {
    const int left = k - p >= 8 ? 8 : k - p;
    const __m256i m = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(kLanes + 8 - left));
    __m256 bv[RJ];
    CRAYON_SGEMM_UNROLL
    for (int j = 0; j < RJ; ++j) bv[j] = _mm256_maskload_ps(b + j * ldb + p, m);
    CRAYON_SGEMM_UNROLL
    for (int i = 0; i < RI; ++i) {
      const __m256 av = _mm256_maskload_ps(a + i * lda + p, m);
      CRAYON_SGEMM_UNROLL
      for (int j = 0; j < RJ; ++j) acc[i][j] = _mm256_fmadd_ps(av, bv[j], acc[i][j]);
    }
  }
  CRAYON_SGEMM_UNROLL
  for (int i = 0; i < RI; ++i)
    CRAYON_SGEMM_UNROLL
    for (int j = 0; j < RJ; ++j) {
      const float v = alpha * sum8(acc[i][j]);
      c[i * ldc + j] = beta == 0.f ? v : v + beta * c[i * ldc + j];
    }
}

template <int RI>
CRAYON_TARGET_AVX2 void dot_rows(int k, const float* a, int64_t lda, const float* b, int64_t ldb, int cols,
                                 float alpha, float beta, float* c, int64_t ldc) {
  switch (cols) {
    case 1: return dot<RI, 1>(k, a, lda, b, ldb, alpha, beta, c, ldc);
    case 2: return dot<RI, 2>(k, a, lda, b, ldb, alpha, beta, c, ldc);
    case 3: return dot<RI, 3>(k, a, lda, b, ldb, alpha, beta, c, ldc);
    default: return dot<RI, 4>(k, a, lda, b, ldb, alpha, beta, c, ldc);
  }
}

}  // namespace

void dot_avx2(int k, const float* a, int64_t lda, const float* b, int64_t ldb, int rows, int cols, float alpha,
              float beta, float* c, int64_t ldc) {
  switch (rows) {
    case 1: return dot_rows<1>(k, a, lda, b, ldb, cols, alpha, beta, c, ldc);
    case 2: return dot_rows<2>(k, a, lda, b, ldb, cols, alpha, beta, c, ldc);
    case 3: return dot_rows<3>(k, a, lda, b, ldb, cols, alpha, beta, c, ldc);
    default: return dot_rows<4>(k, a, lda, b, ldb, cols, alpha, beta, c, ldc);
  }
}

void tile_avx2(int kc, const float* ap, const float* bp, int64_t ldbp, int rows, int cols, float alpha, float beta, float* c,
               int64_t ldc) {
  switch (rows) {
    case 1: return tile<1>(kc, ap, bp, ldbp, cols, alpha, beta, c, ldc);
    case 2: return tile<2>(kc, ap, bp, ldbp, cols, alpha, beta, c, ldc);
    case 3: return tile<3>(kc, ap, bp, ldbp, cols, alpha, beta, c, ldc);
    case 4: return tile<4>(kc, ap, bp, ldbp, cols, alpha, beta, c, ldc);
    case 5: return tile<5>(kc, ap, bp, ldbp, cols, alpha, beta, c, ldc);
    default: return tile<6>(kc, ap, bp, ldbp, cols, alpha, beta, c, ldc);
  }
}

}  // namespace crayon::sgemm_detail

#endif  // CRAYON_SGEMM_X86
