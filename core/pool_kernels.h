#pragma once
// Internal to max_pool2d (core/ops_conv.cpp): its 2x2 stride-2 rows, portable and AVX-512
// (core/pool_avx512.cpp, compiled with the baseline flags like the other kernel files; the
// caller picks by float_isa()). A row pass covers the input rows r and r + W (W columns) and
// the OW outputs over them; window j's cells are base + 2j, +1, +W, +W+1 in the plane.
//   forward:  y[j] = the window's maximum, the first in that order on ties, a NaN only when
//             it comes first; arg[j] = its cell
//   backward: each of the four cells gets dy[j] if it is arg[j], else 0 (every cell of
//             columns 0 .. 2*OW-1 of both rows is written)
#include <cstdint>

#include "core/sgemm_kernels.h"  // CRAYON_SGEMM_X86

namespace crayon::pool_detail {

void max_pool_2x2_row(const float* r, int64_t W, int64_t OW, int32_t base, float* y, int32_t* arg);
void max_pool_2x2_row_backward(const float* dy, const int32_t* arg, int64_t W, int64_t OW, int32_t base, float* r);

#ifdef CRAYON_SGEMM_X86
void max_pool_2x2_row_avx512(const float* r, int64_t W, int64_t OW, int32_t base, float* y, int32_t* arg);
void max_pool_2x2_row_backward_avx512(const float* dy, const int32_t* arg, int64_t W, int64_t OW, int32_t base,
                                      float* r);
#endif

}  // namespace crayon::pool_detail
