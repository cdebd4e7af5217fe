// The direct convolution on AVX-512F: V = 16 floats, 32 vector registers (conv_direct.h).
#include "core/conv_direct.h"

#ifdef CRAYON_SGEMM_X86
#include "core/simd.h"  // <immintrin.h>

#define CRAYON_CONV_TARGET __attribute__((target("avx512f")))

namespace crayon::conv_detail {
namespace {
struct V {
  using reg = __m512;
  using mask = __mmask16;
  static constexpr int lanes = 16, regs = 32;
  CRAYON_CONV_TARGET static reg zero() { return _mm512_setzero_ps(); }
  CRAYON_CONV_TARGET static reg set1(float f) { return _mm512_set1_ps(f); }
  CRAYON_CONV_TARGET static reg load(const float* p) { return _mm512_loadu_ps(p); }
  CRAYON_CONV_TARGET static reg load(const float* p, mask m) { return _mm512_maskz_loadu_ps(m, p); }
  CRAYON_CONV_TARGET static void store(float* p, reg r) { _mm512_storeu_ps(p, r); }
  CRAYON_CONV_TARGET static void store(float* p, reg r, mask m) { _mm512_mask_storeu_ps(p, m, r); }
  CRAYON_CONV_TARGET static reg fma(reg a, reg b, reg c) { return _mm512_fmadd_ps(a, b, c); }
  CRAYON_CONV_TARGET static mask first(int n) { return mask((1u << n) - 1); }
  CRAYON_CONV_TARGET static float sum(reg r) { return _mm512_reduce_add_ps(r); }
};
}  // namespace
}  // namespace crayon::conv_detail

#include "core/conv_direct_kernels.h"

namespace crayon::conv_detail {
const DirectKernels kDirectAvx512{V::lanes, &forward_block<V>, &forward<V>, &weight_grad<V>};
}  // namespace crayon::conv_detail

#endif  // CRAYON_SGEMM_X86
