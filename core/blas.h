#pragma once
// The one place that talks to OpenBLAS. Matrices are row-major; transposes are passed
// as flags to cblas_sgemm, never materialized. Callers use sgemm() (core/sgemm.h), which
// comes here on its "blas" path.
#include <string>

namespace crayon {

// C(M,N) = alpha * op(A) op(B) + beta * C, op(X) = X or X^T. lda/ldb/ldc are the row
// strides of A, B, C as stored (row-major).
void blas_sgemm(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float* a, int lda,
                const float* b, int ldb, float beta, float* c, int ldc);

// OpenBLAS's own description of itself (e.g. "OpenBLAS 0.3.21 DYNAMIC_ARCH ... Haswell
// MAX_THREADS=64"); calling it proves the binary links OpenBLAS, not the reference BLAS.
std::string blas_info();

// Whether OpenBLAS runs its AVX-512 kernels here (its core is SkylakeX, Cooperlake or
// SapphireRapids: OPENBLAS_CORETYPE, or what it detected).
bool blas_avx512_kernels();

}  // namespace crayon
