// The direct convolution on AVX2 + FMA: V = 8 floats, 16 vector registers (conv_direct.h).
#include "core/conv_direct.h"

#ifdef CRAYON_SGEMM_X86
#include <immintrin.h>

#define CRAYON_CONV_TARGET __attribute__((target("avx2,fma")))

namespace crayon::conv_detail {
namespace {
struct V {
  using reg = __m256;
  using mask = __m256i;  // lane i on when its sign bit is set (vmaskmov's convention)
  static constexpr int lanes = 8, regs = 16;
  CRAYON_CONV_TARGET static reg zero() { return _mm256_setzero_ps(); }
  CRAYON_CONV_TARGET static reg set1(float f) { return _mm256_set1_ps(f); }
  CRAYON_CONV_TARGET static reg load(const float* p) { return _mm256_loadu_ps(p); }
  CRAYON_CONV_TARGET static reg load(const float* p, mask m) { return _mm256_maskload_ps(p, m); }
  CRAYON_CONV_TARGET static void store(float* p, reg r) { _mm256_storeu_ps(p, r); }
  CRAYON_CONV_TARGET static void store(float* p, reg r, mask m) { _mm256_maskstore_ps(p, m, r); }
  CRAYON_CONV_TARGET static reg fma(reg a, reg b, reg c) { return _mm256_fmadd_ps(a, b, c); }
  CRAYON_CONV_TARGET static mask first(int n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  }
  CRAYON_CONV_TARGET static float sum(reg r) {
    const __m128 h = _mm_add_ps(_mm256_castps256_ps128(r), _mm256_extractf128_ps(r, 1));
    const __m128 q = _mm_add_ps(h, _mm_movehl_ps(h, h));
    return _mm_cvtss_f32(_mm_add_ss(q, _mm_shuffle_ps(q, q, 1)));
  }
};
}  // namespace
}  // namespace crayon::conv_detail

#include "core/conv_direct_kernels.h"

namespace crayon::conv_detail {
const DirectKernels kDirectAvx2{V::lanes, &forward_block<V>, &forward<V>, &weight_grad<V>};
}  // namespace crayon::conv_detail

#endif  // CRAYON_SGEMM_X86
