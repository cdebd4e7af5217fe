// max_pool2d's 2x2 rows on AVX-512F: 16 windows per step, the even and odd input columns
// split apart with one two-source permute each (core/pool_kernels.h gives the contract).
#include "core/pool_kernels.h"

#ifdef CRAYON_SGEMM_X86
#include <immintrin.h>

#define CRAYON_TARGET_AVX512F __attribute__((target("avx512f")))

namespace crayon::pool_detail {

namespace {
constexpr int L = 16;
// The first n lanes (none for n <= 0, all for n >= 16).
__mmask16 first(int64_t n) { return n <= 0 ? __mmask16(0) : n >= L ? __mmask16(0xFFFF) : __mmask16((1u << n) - 1); }
}  // namespace

CRAYON_TARGET_AVX512F void max_pool_2x2_row_avx512(const float* r, int64_t W, int64_t OW, int32_t base, float* y,
                                                   int32_t* arg) {
  const float* r1 = r + W;
  const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
  const __m512i one = _mm512_set1_epi32(1), w = _mm512_set1_epi32(int32_t(W));
  for (int64_t j = 0; j < OW; j += L) {
    // The last step's windows past OW masked off: n windows read 2n columns of each row.
    const int64_t n = OW - j < L ? OW - j : L;
    const __mmask16 mo = first(n), m0 = first(2 * n), m1 = first(2 * n - L);
    const float* p0 = r + 2 * j;
    const float* p1 = r1 + 2 * j;
    const __m512 x0 = _mm512_maskz_loadu_ps(m0, p0), x1 = _mm512_maskz_loadu_ps(m1, p0 + L);
    const __m512 z0 = _mm512_maskz_loadu_ps(m0, p1), z1 = _mm512_maskz_loadu_ps(m1, p1 + L);
    const __m512 a = _mm512_permutex2var_ps(x0, even, x1), b = _mm512_permutex2var_ps(x0, odd, x1);
    const __m512 c = _mm512_permutex2var_ps(z0, even, z1), d = _mm512_permutex2var_ps(z0, odd, z1);
    const __m512i at_a = _mm512_add_epi32(_mm512_set1_epi32(base + int32_t(2 * j)), even);
    __m512 best = a;
    __m512i at = at_a;
    __mmask16 m = _mm512_cmp_ps_mask(b, best, _CMP_GT_OQ);  // false when either is NaN
    best = _mm512_mask_blend_ps(m, best, b);
    at = _mm512_mask_add_epi32(at, m, at_a, one);
    m = _mm512_cmp_ps_mask(c, best, _CMP_GT_OQ);
    best = _mm512_mask_blend_ps(m, best, c);
    at = _mm512_mask_add_epi32(at, m, at_a, w);
    m = _mm512_cmp_ps_mask(d, best, _CMP_GT_OQ);
    best = _mm512_mask_blend_ps(m, best, d);
    at = _mm512_mask_add_epi32(at, m, _mm512_add_epi32(at_a, w), one);
    _mm512_mask_storeu_ps(y + j, mo, best);
    _mm512_mask_storeu_epi32(arg + j, mo, at);
  }
}

CRAYON_TARGET_AVX512F void max_pool_2x2_row_backward_avx512(const float* dy, const int32_t* arg, int64_t W, int64_t OW,
                                                            int32_t base, float* r) {
  float* r1 = r + W;
  const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  // Interleave two 16-lane vectors e, o into (e0, o0, e1, o1, ...): lanes 0-15 and 16-31.
  const __m512i lo = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
  const __m512i hi = _mm512_add_epi32(lo, _mm512_set1_epi32(8));
  const __m512i one = _mm512_set1_epi32(1), w = _mm512_set1_epi32(int32_t(W));
  for (int64_t j = 0; j < OW; j += L) {
    const int64_t n = OW - j < L ? OW - j : L;
    const __mmask16 mo = first(n), m0 = first(2 * n), m1 = first(2 * n - L);
    const __m512 g = _mm512_maskz_loadu_ps(mo, dy + j);
    const __m512i at = _mm512_maskz_loadu_epi32(mo, arg + j);
    const __m512i at_a = _mm512_add_epi32(_mm512_set1_epi32(base + int32_t(2 * j)), even);
    const __m512i at_c = _mm512_add_epi32(at_a, w);
    const __m512 a = _mm512_maskz_mov_ps(_mm512_cmpeq_epi32_mask(at, at_a), g);
    const __m512 b = _mm512_maskz_mov_ps(_mm512_cmpeq_epi32_mask(at, _mm512_add_epi32(at_a, one)), g);
    const __m512 c = _mm512_maskz_mov_ps(_mm512_cmpeq_epi32_mask(at, at_c), g);
    const __m512 d = _mm512_maskz_mov_ps(_mm512_cmpeq_epi32_mask(at, _mm512_add_epi32(at_c, one)), g);
    _mm512_mask_storeu_ps(r + 2 * j, m0, _mm512_permutex2var_ps(a, lo, b));
    _mm512_mask_storeu_ps(r + 2 * j + L, m1, _mm512_permutex2var_ps(a, hi, b));
    _mm512_mask_storeu_ps(r1 + 2 * j, m0, _mm512_permutex2var_ps(c, lo, d));
    _mm512_mask_storeu_ps(r1 + 2 * j + L, m1, _mm512_permutex2var_ps(c, hi, d));
  }
}

}  // namespace crayon::pool_detail

#endif  // CRAYON_SGEMM_X86
