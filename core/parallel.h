#pragma once
// Threads are set in one place: set_num_threads() sets both OpenBLAS's pool (GEMM) and
// the OpenMP pool used by crayon's own loops (im2col, pooling, elementwise kernels).
// Loops split work statically, so a given thread count gives the same numbers every run.
namespace crayon {

void set_num_threads(int n);  // n >= 1
int num_threads();

}  // namespace crayon
