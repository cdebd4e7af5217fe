#pragma once
// CRAYON_CLONES: on a plain loop function, has GCC or clang build it for AVX-512, AVX2 and
// the baseline, the loader picking the CPU's best once (target_clones). For loops whose
// arithmetic gives the same bits on every ISA (no reassociation, no FMA contraction at
// -std=c++20). Elsewhere than x86-64 it is empty and the baseline build is all there is.
#if defined(__x86_64__)
#define CRAYON_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define CRAYON_CLONES
#endif
