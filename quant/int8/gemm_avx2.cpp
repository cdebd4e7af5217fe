// The AVX2 int8 GEMM kernels (vpmaddubsw with the sign trick of quant/int8/gemm.h), x86-64 only.
// Every function that uses AVX2 carries CRAYON_TARGET_AVX2; the file itself is compiled for the
// baseline ISA (quant/int8/CMakeLists.txt says why), and gemm.cpp calls these only on a CPU
// that has AVX2.
#include <algorithm>
#include <cstdint>
#include <cstring>

#include "quant/int8/gemm_kernels.h"

#ifdef CRAYON_INT8_X86

namespace crayon::gemm_detail {

namespace {

// The output stage of requantize_512 (gemm_avx512.cpp, step by step there) on 8 lanes with AVX2.
struct StageVec256 {
  __m256i bias, mult, t_even, t_odd, add_even, add_odd, offset;
};

CRAYON_TARGET_AVX2 inline __m256i saturating_add_256(__m256i a, __m256i b) {
  const __m256i s = _mm256_add_epi32(a, b);
  const __m256i overflow = _mm256_and_si256(_mm256_xor_si256(a, s), _mm256_xor_si256(b, s));  // sign bit
  const __m256i sat = _mm256_xor_si256(_mm256_srai_epi32(a, 31), _mm256_set1_epi32(INT32_MAX));
  return _mm256_castps_si256(
      _mm256_blendv_ps(_mm256_castsi256_ps(s), _mm256_castsi256_ps(sat), _mm256_castsi256_ps(overflow)));
}

CRAYON_TARGET_AVX2 inline __m256i round_shift_256(__m256i p, __m256i t, __m256i add) {
  const __m256i bit = _mm256_and_si256(_mm256_srlv_epi64(p, t), _mm256_set1_epi64x(1));
  return _mm256_srlv_epi64(_mm256_add_epi64(_mm256_add_epi64(p, add), bit), t);
}

CRAYON_TARGET_AVX2 inline __m256i requantize_256(__m256i acc, const StageVec256& s, __m256i lo, __m256i hi,
                                                 __m256i zero_point) {
  const __m256i x = _mm256_add_epi32(acc, s.bias);
  const __m256i even = round_shift_256(_mm256_mul_epi32(x, s.mult), s.t_even, s.add_even);
  const __m256i odd =
      round_shift_256(_mm256_mul_epi32(_mm256_srli_epi64(x, 32), _mm256_srli_epi64(s.mult, 32)), s.t_odd, s.add_odd);
  __m256i q = _mm256_sub_epi32(_mm256_blend_epi32(even, _mm256_slli_epi64(odd, 32), 0xAA), s.offset);
  q = _mm256_min_epi32(_mm256_max_epi32(q, lo), hi);
  return _mm256_add_epi32(q, zero_point);
}

// Epilogue::general: requantize_value() lane by lane, lane l on channel j + l (per_lane) or j.
CRAYON_TARGET_AVX2 inline __m256i requantize_general_256(__m256i acc, const Epilogue& e, int64_t j, bool per_lane) {
  alignas(32) int32_t v[8];
  _mm256_store_si256(reinterpret_cast<__m256i*>(v), acc);
  for (int l = 0; l < 8; ++l) v[l] = e.requantize(v[l], per_lane ? j + l : j);
  return _mm256_load_si256(reinterpret_cast<const __m256i*>(v));
}

CRAYON_TARGET_AVX2 inline __m256i load_256(const void* p) { return _mm256_load_si256(static_cast<const __m256i*>(p)); }

CRAYON_TARGET_AVX2 inline StageVec256 load_stage_256(const Epilogue& e, int64_t j) {
  return {load_256(e.bias + j),         load_256(e.mult + j),        load_256(e.t_even + j / 2),
          load_256(e.t_odd + j / 2),    load_256(e.add_even + j / 2), load_256(e.add_odd + j / 2),
          load_256(e.offset + j)};
}

CRAYON_TARGET_AVX2 inline StageVec256 broadcast_stage_256(const Epilogue& e, int64_t j) {
  return {_mm256_set1_epi32(e.bias[j]), _mm256_set1_epi32(e.mult[j]), _mm256_set1_epi64x(e.t(j)),
          _mm256_set1_epi64x(e.t(j)),   _mm256_set1_epi64x(e.add(j)),  _mm256_set1_epi64x(e.add(j)),
          _mm256_set1_epi32(e.offset[j])};
}

// 16 int32 lanes in [-128, 127] (a, b) -> 16 bytes in order.
CRAYON_TARGET_AVX2 inline __m128i narrow_16(__m256i a, __m256i b) {
  const __m256i p = _mm256_permute4x64_epi64(_mm256_packs_epi32(a, b), 0xD8);
  return _mm_packs_epi16(_mm256_castsi256_si128(p), _mm256_extracti128_si256(p, 1));
}

CRAYON_TARGET_AVX2 inline void store_bytes(int8_t* y, __m128i v, int64_t n) {
  if (n >= 16) {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(y), v);
  } else {
    alignas(16) int8_t tmp[16];
    _mm_store_si128(reinterpret_cast<__m128i*>(tmp), v);
    std::memcpy(y, tmp, size_t(n));
  }
}

// The epilogues of the AVX2 tiles, out of line as for VNNI (finish_rows_512).
CRAYON_TARGET_AVX2 __attribute__((noinline)) void finish_rows_256(const int32_t* sums, int mr, const Epilogue& e,
                                                                  const RowOut& out, int64_t nr) {
  const __m256i lo = _mm256_set1_epi32(e.lo), hi = _mm256_set1_epi32(e.hi), z = _mm256_set1_epi32(e.zero_point);
  for (int r = 0; r < mr; ++r) {
    const int32_t* row = sums + r * kBlock;
    if (e.kind == Epilogue::Kind::i8) {
      __m256i q[4];
      for (int v = 0; v < 4; ++v) {
        const __m256i a = _mm256_load_si256(reinterpret_cast<const __m256i*>(row + 8 * v));
        q[v] = e.general ? requantize_general_256(a, e, 8 * v, true) : requantize_256(a, load_stage_256(e, 8 * v), lo, hi, z);
      }
      int8_t* y = out.y + r * out.ld;
      store_bytes(y, narrow_16(q[0], q[1]), nr);
      if (nr > 16) store_bytes(y + 16, narrow_16(q[2], q[3]), nr - 16);
    } else {
      alignas(32) int32_t done[kBlock];
      for (int v = 0; v < 4; ++v) {
        __m256i s = _mm256_load_si256(reinterpret_cast<const __m256i*>(row + 8 * v));
        if (e.kind == Epilogue::Kind::i32_bias)
          s = saturating_add_256(s, _mm256_load_si256(reinterpret_cast<const __m256i*>(e.bias + 8 * v)));
        _mm256_store_si256(reinterpret_cast<__m256i*>(done + 8 * v), s);
      }
      std::memcpy(out.c + r * out.ld, done, size_t(nr) * sizeof(int32_t));
    }
  }
}

// Channels x pixels: row r holds 16 pixels of channel c0 + r; np are real.
CRAYON_TARGET_AVX2 __attribute__((noinline)) void finish_patches_256(const int32_t* sums, int mr, const Epilogue& e,
                                                                     int64_t c0, const RowOut& out, int64_t np) {
  const __m256i lo = _mm256_set1_epi32(e.lo), hi = _mm256_set1_epi32(e.hi), z = _mm256_set1_epi32(e.zero_point);
  for (int r = 0; r < mr; ++r) {
    const int32_t* row = sums + r * 16;
    if (e.kind == Epilogue::Kind::pair_max) {
      for (int64_t p = 0; p < np; p += 2) out.c[r * out.ld + p / 2] = std::max(row[p], row[p + 1]);
      continue;
    }
    const int64_t j = c0 + r;
    const StageVec256 s = broadcast_stage_256(e, j);
    const __m256i a0 = _mm256_load_si256(reinterpret_cast<const __m256i*>(row));
    const __m256i a1 = _mm256_load_si256(reinterpret_cast<const __m256i*>(row + 8));
    if (e.general)
      store_bytes(out.y + r * out.ld,
                  narrow_16(requantize_general_256(a0, e, j, false), requantize_general_256(a1, e, j, false)), np);
    else
      store_bytes(out.y + r * out.ld, narrow_16(requantize_256(a0, s, lo, hi, z), requantize_256(a1, s, lo, hi, z)),
                  np);
  }
}

// vpmaddubsw(|a|, w * sign(a)): u8 x s8 pairs summed in int16, at most 2 * 128 * 127 = 32512,
// so never saturating; vpmaddwd by 1 then sums the pairs into int32 lanes.
CRAYON_TARGET_AVX2 inline __m256i dot4_avx2(__m256i acc, __m256i abs_a, __m256i sign_src, __m256i w) {
  const __m256i pairs = _mm256_maddubs_epi16(abs_a, _mm256_sign_epi8(w, sign_src));
  return _mm256_add_epi32(acc, _mm256_madd_epi16(pairs, _mm256_set1_epi16(1)));
}

template <int MR>
CRAYON_TARGET_AVX2 void tile_avx2(const int8_t* a, int64_t lda, const int8_t* w, const Epilogue& e, const RowOut& out,
                                  int64_t nr) {
  __m256i acc[MR][4];
  CRAYON_UNROLL
  for (int r = 0; r < MR; ++r)
    CRAYON_UNROLL
    for (int v = 0; v < 4; ++v) acc[r][v] = _mm256_setzero_si256();
  for (int64_t g = 0; g < lda / 4; ++g, w += kGroupBytes) {
    __m256i wv[4];
    CRAYON_UNROLL
    for (int v = 0; v < 4; ++v) wv[v] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + 32 * v));
    CRAYON_UNROLL
    for (int r = 0; r < MR; ++r) {
      const __m256i av = _mm256_set1_epi32(load4(a + r * lda + 4 * g));
      const __m256i abs_a = _mm256_sign_epi8(av, av);  // -128 -> 0x80, read as unsigned 128
      CRAYON_UNROLL
      for (int v = 0; v < 4; ++v) acc[r][v] = dot4_avx2(acc[r][v], abs_a, av, wv[v]);
    }
  }
  alignas(32) int32_t sums[MR][kBlock];
  CRAYON_UNROLL
  for (int r = 0; r < MR; ++r)
    CRAYON_UNROLL
    for (int v = 0; v < 4; ++v) _mm256_store_si256(reinterpret_cast<__m256i*>(sums[r] + 8 * v), acc[r][v]);
  finish_rows_256(sums[0], MR, e, out, nr);
}

}  // namespace

// requantize_max_rows_512 with AVX2: the maxima gathered (a loop GCC vectorizes), then the
// run requantized 16 at a time.
CRAYON_TARGET_AVX2 void requantize_max_rows_256(const int32_t* a, int64_t rows, int64_t len, int64_t ld_row,
                                                const Epilogue& e, int64_t j, int32_t* pooled, int8_t* y) {
  const int64_t n = rows * len, padded = (n + 15) / 16 * 16;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t i = 0; i < len; ++i) pooled[r * len + i] = std::max(a[2 * r * ld_row + i], a[(2 * r + 1) * ld_row + i]);
  std::fill(pooled + n, pooled + padded, 0);
  const __m256i lo = _mm256_set1_epi32(e.lo), hi = _mm256_set1_epi32(e.hi), z = _mm256_set1_epi32(e.zero_point);
  const StageVec256 s = broadcast_stage_256(e, j);
  for (int64_t i = 0; i < n; i += 16) {
    const __m256i v0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(pooled + i));
    const __m256i v1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(pooled + i + 8));
    if (e.general)
      store_bytes(y + i, narrow_16(requantize_general_256(v0, e, j, false), requantize_general_256(v1, e, j, false)),
                  n - i);
    else
      store_bytes(y + i, narrow_16(requantize_256(v0, s, lo, hi, z), requantize_256(v1, s, lo, hi, z)), n - i);
  }
}

// Channels x pixels with AVX2: up to 4 channels by 16 pixels (two vectors), which with the
// patches and their absolute values fills the 16 ymm registers.
template <int MR>
CRAYON_TARGET_AVX2 void tile_patches_avx2(const int8_t* w, int64_t groups, const int8_t* x, int64_t ldx,
                                          const Epilogue& e, int64_t c0, const RowOut& out, int64_t np) {
  __m256i acc[MR][2];
  CRAYON_UNROLL
  for (int r = 0; r < MR; ++r) acc[r][0] = acc[r][1] = _mm256_setzero_si256();
  for (int64_t g = 0; g < groups; ++g, w += kGroupBytes, x += ldx) {
    const __m256i x0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x));
    const __m256i x1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + 32));
    const __m256i abs0 = _mm256_sign_epi8(x0, x0), abs1 = _mm256_sign_epi8(x1, x1);
    CRAYON_UNROLL
    for (int r = 0; r < MR; ++r) {
      const __m256i wr = _mm256_set1_epi32(load4(w + 4 * r));
      acc[r][0] = dot4_avx2(acc[r][0], abs0, x0, wr);
      acc[r][1] = dot4_avx2(acc[r][1], abs1, x1, wr);
    }
  }
  alignas(32) int32_t sums[MR][16];
  CRAYON_UNROLL
  for (int r = 0; r < MR; ++r) {
    _mm256_store_si256(reinterpret_cast<__m256i*>(sums[r]), acc[r][0]);
    _mm256_store_si256(reinterpret_cast<__m256i*>(sums[r] + 8), acc[r][1]);
  }
  finish_patches_256(sums[0], MR, e, c0, out, np);
}

// The tiles patches_run (gemm.cpp) dispatches to: 1..4 channels.
#define CRAYON_TILE_PATCHES_AVX2(MR)                                                                      \
  template void tile_patches_avx2<MR>(const int8_t*, int64_t, const int8_t*, int64_t, const Epilogue&, int64_t, \
                                      const RowOut&, int64_t);
CRAYON_TILE_PATCHES_AVX2(1)
CRAYON_TILE_PATCHES_AVX2(2)
CRAYON_TILE_PATCHES_AVX2(3)
CRAYON_TILE_PATCHES_AVX2(4)
#undef CRAYON_TILE_PATCHES_AVX2

// Rows in tiles of 2, then the leftover row.
CRAYON_TARGET_AVX2 void rows_avx2(const int8_t* a, int64_t lda, int64_t rows, const int8_t* w, const Epilogue& e,
                                  const RowOut& out, int64_t nr) {
  int64_t i = 0;
  for (; i + 2 <= rows; i += 2) tile_avx2<2>(a + i * lda, lda, w, e, out.at(i, 0), nr);
  if (i < rows) tile_avx2<1>(a + i * lda, lda, w, e, out.at(i, 0), nr);
}

}  // namespace crayon::gemm_detail

#endif  // CRAYON_INT8_X86
