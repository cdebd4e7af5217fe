// The AVX-512 VNNI int8 GEMM kernels (vpdpbusd, the "+128 trick" of quant/int8/gemm.h), x86-64
// only. Every function that uses AVX-512 carries CRAYON_TARGET_VNNI; the file itself is compiled
// for the baseline ISA (quant/int8/CMakeLists.txt says why), and gemm.cpp calls these only on a
// CPU that has AVX-512 F/BW/VL/VNNI.
#include <algorithm>
#include <cstdint>

#include "quant/int8/gemm_kernels.h"

#ifdef CRAYON_INT8_X86

namespace crayon::gemm_detail {

namespace {

// The output stage on 16 int32 lanes, the arithmetic of requantize_value() (quant/int8/requant.h)
// without its rare cases (Epilogue::general):
//   x = acc + bias (cannot overflow unless general)
//   p = x * m exactly, in int64: _mm512_mul_epi32 on the even lanes, and on the odd lanes
//       shifted down
//   r = round_half_even(p / 2^t), t = 31 - shift in [31, 62]: (p + 2^62 + 2^(t-1) - 1 + bit)
//       >> t with bit = bit t of p, all unsigned (the 2^62 makes the sum non-negative and
//       below 2^64, so the logical shift is exact), minus 2^(62-t) for the 2^62; r fits int32
//   clamp to [act_min - z, act_max - z], then + z.
struct StageVec512 {
  __m512i bias, mult, t_even, t_odd, add_even, add_odd, offset;
};

CRAYON_TARGET_VNNI inline __m512i saturating_add_512(__m512i a, __m512i b) {
  const __m512i s = _mm512_add_epi32(a, b);
  const __mmask16 overflow =
      _mm512_cmplt_epi32_mask(_mm512_and_si512(_mm512_xor_si512(a, s), _mm512_xor_si512(b, s)), _mm512_setzero_si512());
  return _mm512_mask_mov_epi32(s, overflow, _mm512_xor_si512(_mm512_srai_epi32(a, 31), _mm512_set1_epi32(INT32_MAX)));
}

// round_half_even(p / 2^t) + 2^(62-t) in the low 32 bits of each 64-bit lane.
CRAYON_TARGET_VNNI inline __m512i round_shift_512(__m512i p, __m512i t, __m512i add) {
  const __m512i bit = _mm512_and_si512(_mm512_srlv_epi64(p, t), _mm512_set1_epi64(1));
  return _mm512_srlv_epi64(_mm512_add_epi64(_mm512_add_epi64(p, add), bit), t);
}

CRAYON_TARGET_VNNI inline __m512i requantize_512(__m512i acc, const StageVec512& s, __m512i lo, __m512i hi,
                                                 __m512i zero_point) {
  const __m512i x = _mm512_add_epi32(acc, s.bias);
  const __m512i even = round_shift_512(_mm512_mul_epi32(x, s.mult), s.t_even, s.add_even);
  const __m512i odd =
      round_shift_512(_mm512_mul_epi32(_mm512_srli_epi64(x, 32), _mm512_srli_epi64(s.mult, 32)), s.t_odd, s.add_odd);
  __m512i q = _mm512_sub_epi32(_mm512_mask_blend_epi32(0xAAAA, even, _mm512_slli_epi64(odd, 32)), s.offset);
  q = _mm512_min_epi32(_mm512_max_epi32(q, lo), hi);
  return _mm512_add_epi32(q, zero_point);
}

// Epilogue::general: requantize_value() lane by lane, lane l on channel j + l (per_lane) or j.
CRAYON_TARGET_VNNI inline __m512i requantize_general_512(__m512i acc, const Epilogue& e, int64_t j, bool per_lane) {
  alignas(64) int32_t v[16];
  _mm512_store_si512(v, acc);
  for (int l = 0; l < 16; ++l) v[l] = e.requantize(v[l], per_lane ? j + l : j);
  return _mm512_load_si512(v);
}

CRAYON_TARGET_VNNI inline StageVec512 load_stage_512(const Epilogue& e, int64_t j) {
  return {_mm512_load_si512(e.bias + j),         _mm512_load_si512(e.mult + j),
          _mm512_load_si512(e.t_even + j / 2),   _mm512_load_si512(e.t_odd + j / 2),
          _mm512_load_si512(e.add_even + j / 2), _mm512_load_si512(e.add_odd + j / 2),
          _mm512_load_si512(e.offset + j)};
}

CRAYON_TARGET_VNNI inline StageVec512 broadcast_stage_512(const Epilogue& e, int64_t j) {
  return {_mm512_set1_epi32(e.bias[j]), _mm512_set1_epi32(e.mult[j]), _mm512_set1_epi64(e.t(j)),
          _mm512_set1_epi64(e.t(j)),    _mm512_set1_epi64(e.add(j)),  _mm512_set1_epi64(e.add(j)),
          _mm512_set1_epi32(e.offset[j])};
}

// Two vectors of 16 outputs in [-128, 127] -> the first n (<= 32) bytes at y, one store
// (vpmovdb straight to memory, which GCC makes of a convert and a masked store, is slow on AMD).
CRAYON_TARGET_VNNI inline void store_32(int8_t* y, __m512i q0, __m512i q1, int64_t n) {
  const __m256i b = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm512_cvtepi32_epi8(q0)), _mm512_cvtepi32_epi8(q1), 1);
  if (n >= 32) _mm256_storeu_si256(reinterpret_cast<__m256i*>(y), b);
  else _mm256_mask_storeu_epi8(y, __mmask32((uint64_t(1) << std::max<int64_t>(n, 0)) - 1), b);
}

// acc += vpdpbusd(u8, s8). Through inline asm for GCC: with the builtin, GCC 12's register
// allocator copies each accumulator of a large tile twice per iteration (as many moves as
// multiplies); the asm operand keeps it in one register.
CRAYON_TARGET_VNNI inline void dpbusd(__m512i& acc, __m512i u8, __m512i s8) {
#if defined(__GNUC__) && !defined(__clang__)
  asm("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(u8), "v"(s8));
#else
  acc = _mm512_dpbusd_epi32(acc, u8, s8);
#endif
}

inline __mmask16 lane_mask(int64_t n) { return n >= 16 ? 0xFFFF : n <= 0 ? 0 : __mmask16((1u << n) - 1); }

// The epilogues of the VNNI tiles, out of line: inlined, their register pressure makes GCC
// spill the accumulators inside the multiply loop. sums: mr rows of 32 raw vpdpbusd sums
// (before the 128 * rowsum correction).

// Row-major (gemm_rows): row r holds 32 channels of one row of a; nr of them are real.
CRAYON_TARGET_VNNI __attribute__((noinline)) void finish_rows_512(const int32_t* sums, int mr,
                                                                  const int32_t* row_sums, const Epilogue& e,
                                                                  const RowOut& out, int64_t nr) {
  // 128 * rowsum: |.| <= 128 * 127 * kMaxGemmK < 2^31
  const __m512i c128 = _mm512_set1_epi32(128);
  const __m512i corr0 = _mm512_mullo_epi32(_mm512_loadu_si512(row_sums), c128);
  const __m512i corr1 = _mm512_mullo_epi32(_mm512_loadu_si512(row_sums + 16), c128);
  const __mmask16 m0 = lane_mask(nr), m1 = lane_mask(nr - 16);
  const StageVec512 s0 = load_stage_512(e, 0), s1 = load_stage_512(e, 16);
  const __m512i lo = _mm512_set1_epi32(e.lo), hi = _mm512_set1_epi32(e.hi), z = _mm512_set1_epi32(e.zero_point);
  for (int r = 0; r < mr; ++r) {
    const __m512i a0 = _mm512_sub_epi32(_mm512_load_si512(sums + r * kBlock), corr0);
    const __m512i a1 = _mm512_sub_epi32(_mm512_load_si512(sums + r * kBlock + 16), corr1);
    switch (e.kind) {
      case Epilogue::Kind::i8:
        if (e.general)
          store_32(out.y + r * out.ld, requantize_general_512(a0, e, 0, true), requantize_general_512(a1, e, 16, true),
                   nr);
        else
          store_32(out.y + r * out.ld, requantize_512(a0, s0, lo, hi, z), requantize_512(a1, s1, lo, hi, z), nr);
        break;
      case Epilogue::Kind::i32_bias:
        _mm512_mask_storeu_epi32(out.c + r * out.ld, m0, saturating_add_512(a0, s0.bias));
        _mm512_mask_storeu_epi32(out.c + r * out.ld + 16, m1, saturating_add_512(a1, s1.bias));
        break;
      default:
        _mm512_mask_storeu_epi32(out.c + r * out.ld, m0, a0);
        _mm512_mask_storeu_epi32(out.c + r * out.ld + 16, m1, a1);
    }
  }
}

// Channels x pixels (patches_run): row r holds 32 pixels of channel c0 + r; np are real.
CRAYON_TARGET_VNNI __attribute__((noinline)) void finish_patches_512(const int32_t* sums, int mr,
                                                                     const int32_t* row_sums, const Epilogue& e,
                                                                     int64_t c0, const RowOut& out, int64_t np) {
  if (e.kind == Epilogue::Kind::pair_max) {
    // Even and odd pixels of the 32 gathered into two vectors (vpermt2d), then their max. The
    // correction comes first: the raw sums may have wrapped, the corrected ones are exact.
    const __m512i even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
    const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
    const __mmask16 pairs = lane_mask((np + 1) / 2);
    for (int r = 0; r < mr; ++r) {
      const __m512i corr = _mm512_set1_epi32(128 * row_sums[c0 + r]);
      const __m512i a0 = _mm512_sub_epi32(_mm512_load_si512(sums + r * kPixelTile), corr);
      const __m512i a1 = _mm512_sub_epi32(_mm512_load_si512(sums + r * kPixelTile + 16), corr);
      _mm512_mask_storeu_epi32(out.c + r * out.ld, pairs,
                               _mm512_max_epi32(_mm512_permutex2var_epi32(a0, even, a1),
                                                _mm512_permutex2var_epi32(a0, odd, a1)));
    }
    return;
  }
  const __m512i lo = _mm512_set1_epi32(e.lo), hi = _mm512_set1_epi32(e.hi), z = _mm512_set1_epi32(e.zero_point);
  for (int r = 0; r < mr; ++r) {
    const __m512i corr = _mm512_set1_epi32(128 * row_sums[c0 + r]);
    const StageVec512 s = broadcast_stage_512(e, c0 + r);
    const __m512i a0 = _mm512_sub_epi32(_mm512_load_si512(sums + r * kPixelTile), corr);
    const __m512i a1 = _mm512_sub_epi32(_mm512_load_si512(sums + r * kPixelTile + 16), corr);
    if (e.general)
      store_32(out.y + r * out.ld, requantize_general_512(a0, e, c0 + r, false),
               requantize_general_512(a1, e, c0 + r, false), np);
    else
      store_32(out.y + r * out.ld, requantize_512(a0, s, lo, hi, z), requantize_512(a1, s, lo, hi, z), np);
  }
}

// vpdpbusd: lane j += sum_t u8(a4[t]) * s8(w[j][t]), a already flipped to a + 128; 128 *
// rowsum(w[j]) comes off at the end, and the wrap-around of the intermediate sums cancels.
template <int MR>
CRAYON_TARGET_VNNI void tile_vnni(const int8_t* a, int64_t lda, const int8_t* w, const int32_t* row_sums,
                                  const Epilogue& e, const RowOut& out, int64_t nr) {
  __m512i acc[MR][2];
  CRAYON_UNROLL
  for (int r = 0; r < MR; ++r) acc[r][0] = acc[r][1] = _mm512_setzero_si512();
  for (int64_t g = 0; g < lda / 4; ++g, w += kGroupBytes) {
    const __m512i w0 = _mm512_loadu_si512(w), w1 = _mm512_loadu_si512(w + 64);
    CRAYON_UNROLL
    for (int r = 0; r < MR; ++r) {
      const __m512i au = _mm512_set1_epi32(load4(a + r * lda + 4 * g));
      dpbusd(acc[r][0], au, w0);
      dpbusd(acc[r][1], au, w1);
    }
  }
  alignas(64) int32_t sums[MR][kBlock];
  CRAYON_UNROLL
  for (int r = 0; r < MR; ++r) {
    _mm512_store_si512(sums[r], acc[r][0]);
    _mm512_store_si512(sums[r] + 16, acc[r][1]);
  }
  finish_rows_512(sums[0], MR, row_sums, e, out, nr);
}

}  // namespace

// One channel of requantize_max_rows: the row maxima gathered into pooled (rows x len,
// contiguous), then requantized as one run: the output stage is a long dependency chain, and a
// run of vectors lets the next start before the last ends.
CRAYON_TARGET_VNNI void requantize_max_rows_512(const int32_t* a, int64_t rows, int64_t len, int64_t ld_row,
                                                const Epilogue& e, int64_t j, int32_t* pooled, int8_t* y) {
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t i = 0; i < len; i += 16) {
      const __mmask16 m = lane_mask(len - i);
      const int32_t* a0 = a + 2 * r * ld_row + i;
      _mm512_mask_storeu_epi32(pooled + r * len + i, m,
                               _mm512_max_epi32(_mm512_maskz_loadu_epi32(m, a0), _mm512_maskz_loadu_epi32(m, a0 + ld_row)));
    }
  const __m512i lo = _mm512_set1_epi32(e.lo), hi = _mm512_set1_epi32(e.hi), z = _mm512_set1_epi32(e.zero_point);
  const StageVec512 s = broadcast_stage_512(e, j);
  const int64_t n = rows * len;
  for (int64_t i = 0; i < n; i += 32) {
    const __m512i v0 = _mm512_maskz_loadu_epi32(lane_mask(n - i), pooled + i);
    const __m512i v1 = _mm512_maskz_loadu_epi32(lane_mask(n - i - 16), pooled + i + 16);
    if (e.general)
      store_32(y + i, requantize_general_512(v0, e, j, false), requantize_general_512(v1, e, j, false), n - i);
    else
      store_32(y + i, requantize_512(v0, s, lo, hi, z), requantize_512(v1, s, lo, hi, z), n - i);
  }
}

// Channels x pixels: the patches are the unsigned operand (flipped by pack_patches), each
// channel's 4 weights of a group the broadcast signed one. 2 x 16 pixels by up to 8 channels.
template <int MR>
CRAYON_TARGET_VNNI void tile_patches_vnni(const int8_t* w, int64_t groups, const int32_t* row_sums, const int8_t* x,
                                          int64_t ldx, const Epilogue& e, int64_t c0, const RowOut& out, int64_t np) {
  __m512i acc[MR][2];
  CRAYON_UNROLL
  for (int r = 0; r < MR; ++r) acc[r][0] = acc[r][1] = _mm512_setzero_si512();
  for (int64_t g = 0; g < groups; ++g, w += kGroupBytes, x += ldx) {
    const __m512i x0 = _mm512_loadu_si512(x), x1 = _mm512_loadu_si512(x + 64);
    CRAYON_UNROLL
    for (int r = 0; r < MR; ++r) {
      const __m512i wr = _mm512_set1_epi32(load4(w + 4 * r));
      dpbusd(acc[r][0], x0, wr);
      dpbusd(acc[r][1], x1, wr);
    }
  }
  alignas(64) int32_t sums[MR][kPixelTile];
  CRAYON_UNROLL
  for (int r = 0; r < MR; ++r) {
    _mm512_store_si512(sums[r], acc[r][0]);
    _mm512_store_si512(sums[r] + 16, acc[r][1]);
  }
  finish_patches_512(sums[0], MR, row_sums, e, c0, out, np);
}

// The tiles patches_run (gemm.cpp) dispatches to: 1..8 channels.
#define CRAYON_TILE_PATCHES_VNNI(MR)                                                                             \
  template void tile_patches_vnni<MR>(const int8_t*, int64_t, const int32_t*, const int8_t*, int64_t, const Epilogue&, \
                                      int64_t, const RowOut&, int64_t);
CRAYON_TILE_PATCHES_VNNI(1)
CRAYON_TILE_PATCHES_VNNI(2)
CRAYON_TILE_PATCHES_VNNI(3)
CRAYON_TILE_PATCHES_VNNI(4)
CRAYON_TILE_PATCHES_VNNI(5)
CRAYON_TILE_PATCHES_VNNI(6)
CRAYON_TILE_PATCHES_VNNI(7)
CRAYON_TILE_PATCHES_VNNI(8)
#undef CRAYON_TILE_PATCHES_VNNI

// Rows in tiles of MR, then the leftover rows one smaller tile.
CRAYON_TARGET_VNNI void rows_vnni(const int8_t* a, int64_t lda, int64_t rows, const int8_t* w, const int32_t* rs,
                                  const Epilogue& e, const RowOut& out, int64_t nr) {
  int64_t i = 0;
  for (; i + 4 <= rows; i += 4) tile_vnni<4>(a + i * lda, lda, w, rs, e, out.at(i, 0), nr);
  const int64_t left = rows - i;
  if (left == 3) tile_vnni<3>(a + i * lda, lda, w, rs, e, out.at(i, 0), nr);
  if (left == 2) tile_vnni<2>(a + i * lda, lda, w, rs, e, out.at(i, 0), nr);
  if (left == 1) tile_vnni<1>(a + i * lda, lda, w, rs, e, out.at(i, 0), nr);
}

// pack_patches' 4 x 16 byte transpose (pack_group, gemm.cpp) on 64 pixels, flipped to x + 128
// for this path: AVX-512's unpacks work within 128-bit lanes, leaving lane L of q_j with pixels
// 16L + 4j .. 16L + 4j + 3; a 4 x 4 transpose of the lanes (shuffle_i32x4) puts them in order.
CRAYON_TARGET_VNNI void pack_group_512(const int8_t* const r[4], int64_t ldp, int8_t* o) {
  const __m512i f = _mm512_set1_epi8(int8_t(0x80));
  for (int64_t p = 0; p < ldp; p += 64) {
    // ldp is a multiple of 32: a last block of 32 pixels loads 32 bytes per row and stores the
    // first two results (pixels 0..15 and 16..31).
    const bool half = ldp - p < 64;
    __m512i v[4];
    CRAYON_UNROLL
    for (int t = 0; t < 4; ++t)
      v[t] = !r[t] ? _mm512_setzero_si512()
           : half  ? _mm512_zextsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(r[t] + p)))
                   : _mm512_loadu_si512(r[t] + p);
    const __m512i a = _mm512_unpacklo_epi8(v[0], v[1]), b = _mm512_unpackhi_epi8(v[0], v[1]);
    const __m512i c = _mm512_unpacklo_epi8(v[2], v[3]), d = _mm512_unpackhi_epi8(v[2], v[3]);
    const __m512i q0 = _mm512_unpacklo_epi16(a, c), q1 = _mm512_unpackhi_epi16(a, c);
    const __m512i q2 = _mm512_unpacklo_epi16(b, d), q3 = _mm512_unpackhi_epi16(b, d);
    const __m512i t0 = _mm512_shuffle_i32x4(q0, q1, 0x44), t1 = _mm512_shuffle_i32x4(q0, q1, 0xEE);
    const __m512i t2 = _mm512_shuffle_i32x4(q2, q3, 0x44), t3 = _mm512_shuffle_i32x4(q2, q3, 0xEE);
    int8_t* dst = o + p * 4;
    _mm512_storeu_si512(dst, _mm512_xor_si512(_mm512_shuffle_i32x4(t0, t2, 0x88), f));
    _mm512_storeu_si512(dst + 64, _mm512_xor_si512(_mm512_shuffle_i32x4(t0, t2, 0xDD), f));
    if (half) break;
    _mm512_storeu_si512(dst + 128, _mm512_xor_si512(_mm512_shuffle_i32x4(t1, t3, 0x88), f));
    _mm512_storeu_si512(dst + 192, _mm512_xor_si512(_mm512_shuffle_i32x4(t1, t3, 0xDD), f));
  }
}

}  // namespace crayon::gemm_detail

#endif  // CRAYON_INT8_X86
