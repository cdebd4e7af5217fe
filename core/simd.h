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

// <immintrin.h> for the files whose functions carry target attributes. GCC 12 warns that
// _mm512_undefined_*() inside its own intrinsics (_mm512_reduce_add_ps, the 256-to-512 casts)
// is uninitialized (GCC bug 105593); the warning belongs to the header, so it is silenced here.
#if defined(__x86_64__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#ifndef __clang__
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>
#pragma GCC diagnostic pop
#endif
