#pragma once
// Every float GEMM of crayon (conv2d, matmul, the bound's passes) goes through sgemm() here.
// Where the CPU has AVX2+FMA or AVX-512 it runs crayon's own packed GEMM (core/sgemm.cpp:
// BLIS-style blocking, a register-tiled micro-kernel per ISA in sgemm_avx2.cpp and
// sgemm_avx512.cpp); elsewhere, and when asked, OpenBLAS (core/blas.h). Why not OpenBLAS
// always: it picks its kernels by CPU model, so it is held to its Haswell (AVX2) kernels on
// machines that set OPENBLAS_CORETYPE=Haswell and falls back to its SSE3 "Prescott" kernels on
// CPUs it does not recognize (bench/README.md §1 measures both); crayon's kernels use what the
// CPU reports (cpuid), as the int8 engine does.
//
// The ISA is chosen once at start-up: CRAYON_FLOAT_ISA (blas, avx2, avx512) if set, else the
// best the CPU runs; set_float_isa() changes it later (tests, benchmarks). The result of each
// element does not depend on the thread count: threads split C into blocks of rows or columns,
// and each element's sum runs over k in the same order whatever the split.
#include <string>

namespace crayon {

enum class FloatIsa { blas, avx2, avx512 };

const char* float_isa_name(FloatIsa isa);              // "blas", "avx2", "avx512"
FloatIsa parse_float_isa(const std::string& name);     // throws std::invalid_argument naming the choices
bool float_isa_supported(FloatIsa isa);
FloatIsa best_float_isa();
FloatIsa float_isa();             // the path in use
void set_float_isa(FloatIsa isa);  // throws std::invalid_argument if this CPU cannot run it
// The path matmul (the linear layers) takes: the float path, except that where it is avx512 by
// the CPU's choice (not CRAYON_FLOAT_ISA or set_float_isa) and OpenBLAS runs its own AVX-512
// kernels (blas_avx512_kernels()), OpenBLAS: on the MLP's shapes
// it is ~1.7x faster than crayon's kernels at 2 threads (bench/README.md §2). The convolutions
// keep the float path.
FloatIsa matmul_isa();

// C(M,N) = alpha * op(A) op(B) + beta * C, op(X) = X or X^T, row-major with row strides
// lda/ldb/ldc as stored. As in BLAS, C is not read when beta == 0 (NaNs in it do not leak).
// Splits the work over num_threads() unless called from inside a parallel loop.
void sgemm(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float* a, int lda,
           const float* b, int ldb, float beta, float* c, int ldc, FloatIsa isa = float_isa());

}  // namespace crayon
