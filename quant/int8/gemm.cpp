#include "quant/int8/gemm.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <type_traits>

#include "core/check.h"
#include "core/parallel.h"

#if defined(__x86_64__)
// GCC 12 warns that _mm512_undefined_epi32() inside its own intrinsics is uninitialized
// (GCC bug 105593, fixed in 12.3); the warning belongs to the header, not to this file.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop
#define CRAYON_INT8_X86 1
#define CRAYON_TARGET_VNNI __attribute__((target("avx512vnni,avx512vl,avx512bw,avx512f")))
#define CRAYON_TARGET_AVX2 __attribute__((target("avx2")))
#endif

// Kernel loops over the rows of a register tile are unrolled before GCC decides where the
// accumulator array lives: without it, GCC 12 keeps copying every accumulator each iteration.
#define CRAYON_UNROLL _Pragma("GCC unroll 16")

namespace crayon {

namespace {

constexpr int64_t kBlock = 32;              // output channels per packed block
constexpr int64_t kGroupBytes = kBlock * 4;  // one group of 4 k for the whole block
constexpr int64_t kRowTile = 64;            // rows of a per parallel task
constexpr int64_t kPixelTile = 32;          // pixels per tile of gemm_s8_patches (patch_stride's unit)

// a's rows as the kernels read them: copied to a buffer with row stride 4 * groups, zero-padded
// to whole groups (the padded weights are 0, so the padding adds nothing), and for the VNNI
// path flipped to a + 128 = a ^ 0x80 once here instead of once per broadcast.
void prepare_rows(const int8_t* a, int64_t rows, int64_t k, int64_t lda, bool flip, int8_t* out) {
  for (int64_t r = 0; r < rows; ++r) {
    int8_t* o = out + r * lda;
    std::memcpy(o, a + r * k, size_t(k));
    std::memset(o + k, 0, size_t(lda - k));
    if (flip)
      for (int64_t i = 0; i < lda; ++i) o[i] = int8_t(o[i] ^ 0x80);
  }
}

inline int32_t load4(const int8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

// What a kernel does with the exact sums of one block of 32 channels: store them (i32), add
// the bias with int32 saturation (i32_bias), run the output stage (i8), or (channels x
// pixels only) store the larger sum of each pair of pixels (pair_max). The per-channel
// parameters are laid out for vector loads; channels past n hold 0.
struct Epilogue {
  enum class Kind { i32, i32_bias, i8, pair_max };
  Kind kind = Kind::i32;
  alignas(64) int32_t bias[kBlock] = {};
  alignas(64) int32_t mult[kBlock] = {};
  alignas(64) int32_t left[kBlock] = {};   // max(shift, 0)
  alignas(64) int32_t right[kBlock] = {};  // max(-shift, 0)
  alignas(64) int32_t rmask[kBlock] = {};  // 2^right - 1: rounding_divide_by_pot's remainder mask
  alignas(64) int32_t rhalf[kBlock] = {};  // rmask >> 1: its threshold before the sign correction
  int32_t zero_point = 0, act_min = -128, act_max = 127;
  int32_t lo = 0, hi = 0;  // act_min - zero_point, act_max - zero_point: clamp, then add z (no overflow)
  // Whether the vector kernels need the rare steps: a left shift (a multiplier >= 1), the
  // INT32_MIN * INT32_MIN saturation of SRDHM, or a bias that could saturate acc + bias
  // (|acc| <= 128 * 127 * k). Real layers need none of them.
  bool general = true;

  FixedPointMultiplier multiplier(int64_t j) const { return {mult[j], left[j] - right[j]}; }
  int8_t requantize(int32_t acc, int64_t j) const {
    return requantize_value(acc, bias[j], multiplier(j), zero_point, act_min, act_max);
  }
  int32_t add_bias(int32_t acc, int64_t j) const {
    const int64_t v = int64_t(acc) + bias[j];
    return int32_t(std::clamp<int64_t>(v, std::numeric_limits<int32_t>::min(), std::numeric_limits<int32_t>::max()));
  }
};

// Channels [j0, j0 + nr) of bias / stage (either may be null), for sums over k products
// (k < 0: sums of any size).
void fill_epilogue(Epilogue& e, Epilogue::Kind kind, const int32_t* bias, const OutputStage* stage, int64_t j0,
                   int64_t nr, int64_t k) {
  e.kind = kind;
  e.general = false;
  const int64_t safe_bias = k < 0 ? -1 : std::numeric_limits<int32_t>::max() - 128 * 127 * k;
  for (int64_t j = 0; j < kBlock; ++j) {
    const bool real = j < nr;
    e.bias[j] = real && bias ? bias[j0 + j] : 0;
    const FixedPointMultiplier m = real && stage ? stage->multiplier[size_t(j0 + j)] : FixedPointMultiplier{};
    e.mult[j] = m.multiplier;
    e.left[j] = m.shift > 0 ? m.shift : 0;
    e.right[j] = m.shift > 0 ? 0 : -m.shift;
    e.rmask[j] = int32_t((int64_t(1) << std::min(e.right[j], 31)) - 1);
    e.rhalf[j] = e.rmask[j] >> 1;
    if (e.left[j] > 0 || e.right[j] > 31 || e.mult[j] == std::numeric_limits<int32_t>::min() ||
        std::abs(int64_t(e.bias[j])) > safe_bias)
      e.general = true;
  }
  if (stage) {
    e.zero_point = stage->zero_point;
    e.act_min = stage->act_min;
    e.act_max = stage->act_max;
    e.lo = e.act_min - e.zero_point;
    e.hi = e.act_max - e.zero_point;
  }
}

void check_stage(const char* who, const OutputStage& stage, int64_t n) {
  if (int64_t(stage.multiplier.size()) != n)
    throw std::invalid_argument(str(who, ": output stage has ", stage.multiplier.size(), " multipliers for ", n,
                                    " output channels"));
  if (stage.zero_point < -128 || stage.zero_point > 127 || stage.act_min < -128 || stage.act_max > 127 ||
      stage.act_min > stage.act_max)
    throw std::invalid_argument(str(who, ": output zero point ", stage.zero_point, ", activation range [",
                                    stage.act_min, ", ", stage.act_max, "] (expected all in [-128, 127], min <= max)"));
}

// Where a row-major tile writes: c (int32) or y (int8), row stride ld.
struct RowOut {
  int32_t* c = nullptr;
  int8_t* y = nullptr;
  int64_t ld = 0;
  RowOut at(int64_t row, int64_t col) const {
    return {c ? c + row * ld + col : nullptr, y ? y + row * ld + col : nullptr, ld};
  }
};

// The scalar epilogue of the portable kernels: sums s[0..nr) of one row of channels from j0.
void finish_row(const Epilogue& e, const int32_t* s, int64_t j0, int64_t nr, int32_t* c, int8_t* y) {
  for (int64_t j = 0; j < nr; ++j) {
    if (e.kind == Epilogue::Kind::i8) y[j] = e.requantize(s[j], j0 + j);
    else c[j] = e.kind == Epilogue::Kind::i32_bias ? e.add_bias(s[j], j0 + j) : s[j];
  }
}

// Each row-major tile kernel multiplies MR prepared rows of a (row stride lda = 4 * groups) by
// one packed block (32 channels) and finishes the first nr (<= 32) channels of each row.

template <int MR>
void tile_portable(const int8_t* a, int64_t lda, const int8_t* w, const Epilogue& e, const RowOut& out, int64_t nr) {
  int32_t acc[MR][kBlock] = {};
  for (int64_t g = 0; g < lda / 4; ++g, w += kGroupBytes)
    CRAYON_UNROLL
    for (int r = 0; r < MR; ++r) {
      const int8_t* a4 = a + r * lda + 4 * g;
      for (int64_t ch = 0; ch < kBlock; ++ch)
        for (int t = 0; t < 4; ++t) acc[r][ch] += int32_t(a4[t]) * int32_t(w[ch * 4 + t]);
    }
  CRAYON_UNROLL
  for (int r = 0; r < MR; ++r) {
    const RowOut o = out.at(r, 0);
    finish_row(e, acc[r], 0, nr, o.c, o.y);
  }
}

void rows_portable(const int8_t* a, int64_t lda, int64_t rows, const int8_t* w, const Epilogue& e, const RowOut& out,
                   int64_t nr) {
  int64_t i = 0;
  for (; i + 4 <= rows; i += 4) tile_portable<4>(a + i * lda, lda, w, e, out.at(i, 0), nr);
  for (; i < rows; ++i) tile_portable<1>(a + i * lda, lda, w, e, out.at(i, 0), nr);
}

// Channels-x-pixels tile (gemm_s8_patches): MR channels (one row of w each, within one block,
// w at channel c0) by kPixelTile pixels of the patches (group stride ldx bytes).
// out points at channel c0, pixel 0 of the tile (pixel pair 0 for pair_max); np pixels are
// valid.
template <int MR>
void tile_patches_portable(const int8_t* w, int64_t groups, const int8_t* x, int64_t ldx, const Epilogue& e, int64_t c0,
                           const RowOut& out, int64_t np) {
  int32_t acc[MR][kPixelTile] = {};
  for (int64_t g = 0; g < groups; ++g, w += kGroupBytes, x += ldx)
    CRAYON_UNROLL
    for (int r = 0; r < MR; ++r)
      for (int64_t p = 0; p < kPixelTile; ++p)
        for (int t = 0; t < 4; ++t) acc[r][p] += int32_t(w[4 * r + t]) * int32_t(x[4 * p + t]);
  for (int r = 0; r < MR; ++r)
    for (int64_t p = 0; p < np; ++p) {
      if (e.kind == Epilogue::Kind::pair_max) {
        if (p % 2 == 0) out.c[r * out.ld + p / 2] = std::max(acc[r][p], acc[r][p + 1]);
      } else {
        out.y[r * out.ld + p] = e.requantize(acc[r][p], c0 + r);
      }
    }
}

#ifdef CRAYON_INT8_X86

// The output stage on 16 int32 lanes, the arithmetic of requantize_value() step by step:
//   x = sat32(acc + bias): the wrapped sum overflowed iff acc and bias share a sign that the
//       sum lacks; it then saturates toward acc's sign
//   x = sat32(x * 2^left): the shift lost bits iff shifting back does not give x
//   h = SRDHM(x, m) = (x * m + 2^30) >> 31 in int64: that floor equals gemmlowp's
//       (ab + nudge) / 2^31 truncated toward zero, nudge = ab >= 0 ? 2^30 : 1 - 2^30, for both
//       signs of ab; x = m = INT32_MIN saturates to INT32_MAX
//   rounding_divide_by_pot(h, right): (h >> right) + 1 where the remainder h & rmask exceeds
//       rhalf + (h < 0), i.e. ties away from zero
//   clamp to [act_min - z, act_max - z], then + z.
// The 64-bit products come from _mm512_mul_epi32 on the even lanes and on the odd lanes
// shifted down; bits 31..62 of each product are the int32 result. Without Epilogue::general
// the saturations and the left shift cannot change anything and are skipped.
struct StageVec512 {
  __m512i bias, mult, left, right, rmask, rhalf;
};

CRAYON_TARGET_VNNI inline __m512i saturating_add_512(__m512i a, __m512i b) {
  const __m512i s = _mm512_add_epi32(a, b);
  const __mmask16 overflow =
      _mm512_cmplt_epi32_mask(_mm512_and_si512(_mm512_xor_si512(a, s), _mm512_xor_si512(b, s)), _mm512_setzero_si512());
  return _mm512_mask_mov_epi32(s, overflow, _mm512_xor_si512(_mm512_srai_epi32(a, 31), _mm512_set1_epi32(INT32_MAX)));
}

template <bool kGeneral>
CRAYON_TARGET_VNNI inline __m512i requantize_512(__m512i acc, const StageVec512& s, __m512i lo, __m512i hi,
                                                 __m512i zero_point) {
  const __m512i int_max = _mm512_set1_epi32(INT32_MAX), int_min = _mm512_set1_epi32(INT32_MIN);
  __m512i x;
  if constexpr (kGeneral) {
    x = saturating_add_512(acc, s.bias);
    const __m512i up = _mm512_sllv_epi32(x, s.left);
    const __mmask16 lost = _mm512_cmpneq_epi32_mask(_mm512_srav_epi32(up, s.left), x);
    x = _mm512_mask_mov_epi32(up, lost, _mm512_xor_si512(_mm512_srai_epi32(x, 31), int_max));
  } else {
    x = _mm512_add_epi32(acc, s.bias);
  }
  const __m512i nudge = _mm512_set1_epi64(int64_t(1) << 30);
  const __m512i even = _mm512_srli_epi64(_mm512_add_epi64(_mm512_mul_epi32(x, s.mult), nudge), 31);
  const __m512i odd = _mm512_slli_epi64(
      _mm512_add_epi64(_mm512_mul_epi32(_mm512_srli_epi64(x, 32), _mm512_srli_epi64(s.mult, 32)), nudge), 1);
  __m512i h = _mm512_mask_blend_epi32(0xAAAA, even, odd);
  if constexpr (kGeneral)
    h = _mm512_mask_mov_epi32(h, _mm512_cmpeq_epi32_mask(x, int_min) & _mm512_cmpeq_epi32_mask(s.mult, int_min),
                              int_max);
  const __m512i threshold = _mm512_sub_epi32(s.rhalf, _mm512_srai_epi32(h, 31));
  __m512i q = _mm512_srav_epi32(h, s.right);
  q = _mm512_mask_sub_epi32(q, _mm512_cmpgt_epi32_mask(_mm512_and_si512(h, s.rmask), threshold), q,
                            _mm512_set1_epi32(-1));
  q = _mm512_min_epi32(_mm512_max_epi32(q, lo), hi);
  return _mm512_add_epi32(q, zero_point);
}

CRAYON_TARGET_VNNI inline StageVec512 load_stage_512(const Epilogue& e, int64_t j) {
  return {_mm512_load_si512(e.bias + j),  _mm512_load_si512(e.mult + j),  _mm512_load_si512(e.left + j),
          _mm512_load_si512(e.right + j), _mm512_load_si512(e.rmask + j), _mm512_load_si512(e.rhalf + j)};
}

CRAYON_TARGET_VNNI inline StageVec512 broadcast_stage_512(const Epilogue& e, int64_t j) {
  return {_mm512_set1_epi32(e.bias[j]),  _mm512_set1_epi32(e.mult[j]),  _mm512_set1_epi32(e.left[j]),
          _mm512_set1_epi32(e.right[j]), _mm512_set1_epi32(e.rmask[j]), _mm512_set1_epi32(e.rhalf[j])};
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
      store_32(y + i, requantize_512<true>(v0, s, lo, hi, z), requantize_512<true>(v1, s, lo, hi, z), n - i);
    else
      store_32(y + i, requantize_512<false>(v0, s, lo, hi, z), requantize_512<false>(v1, s, lo, hi, z), n - i);
  }
}

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
          store_32(out.y + r * out.ld, requantize_512<true>(a0, s0, lo, hi, z), requantize_512<true>(a1, s1, lo, hi, z),
                   nr);
        else
          store_32(out.y + r * out.ld, requantize_512<false>(a0, s0, lo, hi, z),
                   requantize_512<false>(a1, s1, lo, hi, z), nr);
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
      store_32(out.y + r * out.ld, requantize_512<true>(a0, s, lo, hi, z), requantize_512<true>(a1, s, lo, hi, z), np);
    else
      store_32(out.y + r * out.ld, requantize_512<false>(a0, s, lo, hi, z), requantize_512<false>(a1, s, lo, hi, z),
               np);
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

// The same output stage on 8 lanes with AVX2 (no mask registers: compare vectors and blendv).
struct StageVec256 {
  __m256i bias, mult, left, right, rmask, rhalf;
};

CRAYON_TARGET_AVX2 inline __m256i saturating_add_256(__m256i a, __m256i b) {
  const __m256i s = _mm256_add_epi32(a, b);
  const __m256i overflow = _mm256_and_si256(_mm256_xor_si256(a, s), _mm256_xor_si256(b, s));  // sign bit
  const __m256i sat = _mm256_xor_si256(_mm256_srai_epi32(a, 31), _mm256_set1_epi32(INT32_MAX));
  return _mm256_castps_si256(
      _mm256_blendv_ps(_mm256_castsi256_ps(s), _mm256_castsi256_ps(sat), _mm256_castsi256_ps(overflow)));
}

CRAYON_TARGET_AVX2 inline __m256i requantize_256(__m256i acc, const StageVec256& s, __m256i lo, __m256i hi,
                                                 __m256i zero_point) {
  const __m256i int_max = _mm256_set1_epi32(INT32_MAX), int_min = _mm256_set1_epi32(INT32_MIN);
  __m256i x = saturating_add_256(acc, s.bias);
  const __m256i up = _mm256_sllv_epi32(x, s.left);
  const __m256i kept = _mm256_cmpeq_epi32(_mm256_srav_epi32(up, s.left), x);
  x = _mm256_blendv_epi8(_mm256_xor_si256(_mm256_srai_epi32(x, 31), int_max), up, kept);
  const __m256i nudge = _mm256_set1_epi64x(int64_t(1) << 30);
  const __m256i even = _mm256_srli_epi64(_mm256_add_epi64(_mm256_mul_epi32(x, s.mult), nudge), 31);
  const __m256i odd = _mm256_slli_epi64(
      _mm256_add_epi64(_mm256_mul_epi32(_mm256_srli_epi64(x, 32), _mm256_srli_epi64(s.mult, 32)), nudge), 1);
  __m256i h = _mm256_blend_epi32(even, odd, 0xAA);
  const __m256i both_min = _mm256_and_si256(_mm256_cmpeq_epi32(x, int_min), _mm256_cmpeq_epi32(s.mult, int_min));
  h = _mm256_blendv_epi8(h, int_max, both_min);
  const __m256i threshold = _mm256_sub_epi32(s.rhalf, _mm256_srai_epi32(h, 31));
  __m256i q = _mm256_srav_epi32(h, s.right);
  q = _mm256_sub_epi32(q, _mm256_cmpgt_epi32(_mm256_and_si256(h, s.rmask), threshold));  // true is -1
  q = _mm256_min_epi32(_mm256_max_epi32(q, lo), hi);
  return _mm256_add_epi32(q, zero_point);
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
        const auto at = [&](const int32_t* p) { return reinterpret_cast<const __m256i*>(p + 8 * v); };
        const StageVec256 s{_mm256_load_si256(at(e.bias)),  _mm256_load_si256(at(e.mult)),
                            _mm256_load_si256(at(e.left)),  _mm256_load_si256(at(e.right)),
                            _mm256_load_si256(at(e.rmask)), _mm256_load_si256(at(e.rhalf))};
        q[v] = requantize_256(_mm256_load_si256(at(row)), s, lo, hi, z);
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
    const StageVec256 s{_mm256_set1_epi32(e.bias[j]),  _mm256_set1_epi32(e.mult[j]),
                        _mm256_set1_epi32(e.left[j]),  _mm256_set1_epi32(e.right[j]),
                        _mm256_set1_epi32(e.rmask[j]), _mm256_set1_epi32(e.rhalf[j])};
    const __m256i a0 = _mm256_load_si256(reinterpret_cast<const __m256i*>(row));
    const __m256i a1 = _mm256_load_si256(reinterpret_cast<const __m256i*>(row + 8));
    store_bytes(out.y + r * out.ld, narrow_16(requantize_256(a0, s, lo, hi, z), requantize_256(a1, s, lo, hi, z)), np);
  }
}

// requantize_max_rows_512 with AVX2: the maxima gathered (a loop GCC vectorizes), then the
// run requantized 16 at a time.
CRAYON_TARGET_AVX2 void requantize_max_rows_256(const int32_t* a, int64_t rows, int64_t len, int64_t ld_row,
                                                const Epilogue& e, int64_t j, int32_t* pooled, int8_t* y) {
  const int64_t n = rows * len, padded = (n + 15) / 16 * 16;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t i = 0; i < len; ++i) pooled[r * len + i] = std::max(a[2 * r * ld_row + i], a[(2 * r + 1) * ld_row + i]);
  std::fill(pooled + n, pooled + padded, 0);
  const __m256i lo = _mm256_set1_epi32(e.lo), hi = _mm256_set1_epi32(e.hi), z = _mm256_set1_epi32(e.zero_point);
  const StageVec256 s{_mm256_set1_epi32(e.bias[j]),  _mm256_set1_epi32(e.mult[j]),
                      _mm256_set1_epi32(e.left[j]),  _mm256_set1_epi32(e.right[j]),
                      _mm256_set1_epi32(e.rmask[j]), _mm256_set1_epi32(e.rhalf[j])};
  for (int64_t i = 0; i < n; i += 16) {
    const __m256i v0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(pooled + i));
    const __m256i v1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(pooled + i + 8));
    store_bytes(y + i, narrow_16(requantize_256(v0, s, lo, hi, z), requantize_256(v1, s, lo, hi, z)), n - i);
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

CRAYON_TARGET_AVX2 void rows_avx2(const int8_t* a, int64_t lda, int64_t rows, const int8_t* w, const Epilogue& e,
                                  const RowOut& out, int64_t nr) {
  int64_t i = 0;
  for (; i + 2 <= rows; i += 2) tile_avx2<2>(a + i * lda, lda, w, e, out.at(i, 0), nr);
  if (i < rows) tile_avx2<1>(a + i * lda, lda, w, e, out.at(i, 0), nr);
}

#endif  // CRAYON_INT8_X86

// out (rows, nr) = prepared rows of a x block blk of w, finished by e.
void run_block(Int8Isa isa, const int8_t* a, int64_t lda, int64_t rows, const PackedWeights& w, int64_t blk,
               const Epilogue& e, const RowOut& out) {
  const int8_t* wb = w.data.data() + blk * w.groups() * kGroupBytes;
  const int64_t nr = std::min(kBlock, w.n - blk * kBlock);
  switch (isa) {
#ifdef CRAYON_INT8_X86
    case Int8Isa::avx512vnni: return rows_vnni(a, lda, rows, wb, w.row_sums.data() + blk * kBlock, e, out, nr);
    case Int8Isa::avx2: return rows_avx2(a, lda, rows, wb, e, out, nr);
#endif
    default: return rows_portable(a, lda, rows, wb, e, out, nr);
  }
}

// The row-major product behind gemm_s8, gemm_s8_acc and gemm_s8_requant.
void gemm_rows(const char* who, const int8_t* a, int64_t m, int64_t k, const PackedWeights& w, Epilogue::Kind kind,
               const int32_t* bias, const OutputStage* stage, const RowOut& out, Int8Isa isa) {
  if (k != w.k || m < 0)
    throw std::invalid_argument(str(who, ": a (", m, ", ", k, ") against weights (", w.n, ", ", w.k, ")"));
  if (!int8_isa_supported(isa))
    throw std::invalid_argument(str(who, ": this CPU cannot run the ", int8_isa_name(isa), " path"));
  if (stage) check_stage(who, *stage, w.n);
  if (m == 0) return;
  // Tasks: (row tile, channel block) pairs, row-major, so a thread prepares each tile of a
  // once and runs it past the weight blocks (32 x k bytes each, L1-sized for k up to ~1000,
  // reused by every MR rows of the tile).
  const int64_t lda = 4 * w.groups(), row_tiles = (m + kRowTile - 1) / kRowTile, tasks = row_tiles * w.blocks();
  const int64_t task_macs = std::min(m, kRowTile) * kBlock * k;
  parallel_for(
      tasks,
      [&](int64_t begin, int64_t end) {
        std::vector<int8_t> rows(size_t(std::min(m, kRowTile) * lda));
        Epilogue e;
        int64_t prepared = -1;
        for (int64_t t = begin; t < end; ++t) {
          const int64_t rt = t / w.blocks(), blk = t % w.blocks(), r0 = rt * kRowTile, mr = std::min(kRowTile, m - r0);
          if (rt != prepared) prepare_rows(a + r0 * k, mr, k, lda, isa == Int8Isa::avx512vnni, rows.data());
          prepared = rt;
          fill_epilogue(e, kind, bias, stage, blk * kBlock, std::min(kBlock, w.n - blk * kBlock), k);
          run_block(isa, rows.data(), lda, mr, w, blk, e, out.at(r0, blk * kBlock));
        }
      },
      std::max<int64_t>(1, (int64_t(1) << 18) / task_macs));  // ~256k MACs per thread at least
}

// pack_patches for one group: rows r[0..3] (null: zeros), pixels [p0, ldp) -> o[p * 4 + t],
// flipped to x + 128 for the VNNI path. SSE2 (x86-64's baseline) does 16 pixels at a time as a
// 4 x 16 byte transpose: bytes of rows 0/1 and 2/3 paired, then the pairs paired.
void pack_group(const int8_t* const r[4], int64_t p0, int64_t ldp, bool flip, int8_t* o) {
#if defined(__SSE2__)
  const __m128i f = _mm_set1_epi8(flip ? int8_t(0x80) : int8_t(0));
  for (int64_t p = p0; p < ldp; p += 16) {
    __m128i v[4];
    for (int t = 0; t < 4; ++t)
      v[t] = r[t] ? _mm_loadu_si128(reinterpret_cast<const __m128i*>(r[t] + p)) : _mm_setzero_si128();
    const __m128i a = _mm_unpacklo_epi8(v[0], v[1]), b = _mm_unpackhi_epi8(v[0], v[1]);
    const __m128i c = _mm_unpacklo_epi8(v[2], v[3]), d = _mm_unpackhi_epi8(v[2], v[3]);
    __m128i* dst = reinterpret_cast<__m128i*>(o + p * 4);
    _mm_storeu_si128(dst + 0, _mm_xor_si128(_mm_unpacklo_epi16(a, c), f));
    _mm_storeu_si128(dst + 1, _mm_xor_si128(_mm_unpackhi_epi16(a, c), f));
    _mm_storeu_si128(dst + 2, _mm_xor_si128(_mm_unpacklo_epi16(b, d), f));
    _mm_storeu_si128(dst + 3, _mm_xor_si128(_mm_unpackhi_epi16(b, d), f));
  }
#else
  for (int64_t p = p0; p < ldp; ++p)
    for (int t = 0; t < 4; ++t) o[p * 4 + t] = int8_t((r[t] ? r[t][p] : 0) ^ (flip ? 0x80 : 0));
#endif
}

#ifdef CRAYON_INT8_X86
// The same transpose on 64 pixels: AVX-512's unpacks work within 128-bit lanes, leaving lane
// L of q_j with pixels 16L + 4j .. 16L + 4j + 3; a 4 x 4 transpose of the lanes
// (shuffle_i32x4) puts them in order.
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
#endif

// Dispatches a tile template on its run-time channel count 1..8.
template <typename F>
void with_channels(int64_t mr, F&& f) {
  switch (mr) {
    case 1: return f(std::integral_constant<int, 1>{});
    case 2: return f(std::integral_constant<int, 2>{});
    case 3: return f(std::integral_constant<int, 3>{});
    case 4: return f(std::integral_constant<int, 4>{});
    case 5: return f(std::integral_constant<int, 5>{});
    case 6: return f(std::integral_constant<int, 6>{});
    case 7: return f(std::integral_constant<int, 7>{});
    default: return f(std::integral_constant<int, 8>{});
  }
}

Int8Isa initial_isa() {
  const char* env = std::getenv("CRAYON_INT8_ISA");
  if (env == nullptr || *env == '\0') return best_int8_isa();
  Int8Isa isa;
  try {
    isa = parse_int8_isa(env);
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(str("CRAYON_INT8_ISA: ", e.what()));
  }
  if (!int8_isa_supported(isa))
    throw std::invalid_argument(str("CRAYON_INT8_ISA=", env, ": this CPU does not support it (best: ",
                                    int8_isa_name(best_int8_isa()), ")"));
  return isa;
}

std::atomic<Int8Isa>& current_isa() {
  static std::atomic<Int8Isa> isa{initial_isa()};
  return isa;
}

}  // namespace

const char* int8_isa_name(Int8Isa isa) {
  switch (isa) {
    case Int8Isa::portable: return "portable";
    case Int8Isa::avx2: return "avx2";
    case Int8Isa::avx512vnni: return "avx512vnni";
  }
  return "?";
}

Int8Isa parse_int8_isa(const std::string& name) {
  for (Int8Isa isa : {Int8Isa::portable, Int8Isa::avx2, Int8Isa::avx512vnni})
    if (name == int8_isa_name(isa)) return isa;
  throw std::invalid_argument(str("unknown int8 kernel path '", name, "' (expected portable, avx2 or avx512vnni)"));
}

bool int8_isa_supported(Int8Isa isa) {
  switch (isa) {
    case Int8Isa::portable: return true;
#ifdef CRAYON_INT8_X86
    case Int8Isa::avx2: return __builtin_cpu_supports("avx2");
    case Int8Isa::avx512vnni:
      return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
             __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni");
#endif
    default: return false;
  }
}

Int8Isa best_int8_isa() {
  for (Int8Isa isa : {Int8Isa::avx512vnni, Int8Isa::avx2})
    if (int8_isa_supported(isa)) return isa;
  return Int8Isa::portable;
}

Int8Isa int8_isa() { return current_isa().load(); }

void set_int8_isa(Int8Isa isa) {
  if (!int8_isa_supported(isa))
    throw std::invalid_argument(str("set_int8_isa: this CPU cannot run the ", int8_isa_name(isa), " path (best: ",
                                    int8_isa_name(best_int8_isa()), ")"));
  current_isa().store(isa);
}

PackedWeights pack_weights(const int8_t* w, int64_t n, int64_t k) {
  if (n < 1 || k < 1 || k > kMaxGemmK)
    throw std::invalid_argument(str("pack_weights: weight (", n, ", ", k, ") (expected n >= 1 and 1 <= k <= ",
                                    kMaxGemmK, ")"));
  PackedWeights p;
  p.n = n;
  p.k = k;
  p.shape = {n, k};
  p.data.assign(size_t(p.blocks() * p.groups() * kGroupBytes), 0);
  p.row_sums.assign(size_t(p.blocks() * kBlock), 0);
  for (int64_t j = 0; j < n; ++j)
    for (int64_t kk = 0; kk < k; ++kk) {
      const int8_t v = w[j * k + kk];
      if (v == -128)
        throw std::invalid_argument(str("pack_weights: weight [", j, ", ", kk,
                                        "] is -128; int8 weights must lie in [-127, 127] (narrow range)"));
      p.data[size_t((((j / kBlock) * p.groups() + kk / 4) * kBlock + j % kBlock) * 4 + kk % 4)] = v;
      p.row_sums[size_t(j)] += v;
    }
  return p;
}

PackedWeights pack_weights(const Tensor& w) {
  if (w.dtype() != DType::i8 || w.ndim() < 2)
    throw std::invalid_argument(str("pack_weights: expected an int8 tensor of rank >= 2, got ", dtype_name(w.dtype()),
                                    " ", shape_str(w.shape())));
  PackedWeights p = pack_weights(w.data_as<int8_t>(), w.size(0), w.numel() / std::max<int64_t>(1, w.size(0)));
  p.shape = w.shape();
  return p;
}

void gemm_s8(const int8_t* a, int64_t m, int64_t k, const PackedWeights& w, int32_t* c) {
  gemm_s8(a, m, k, w, c, int8_isa());
}

void gemm_s8(const int8_t* a, int64_t m, int64_t k, const PackedWeights& w, int32_t* c, Int8Isa isa) {
  gemm_rows("gemm_s8", a, m, k, w, Epilogue::Kind::i32, nullptr, nullptr, {c, nullptr, w.n}, isa);
}

void gemm_s8_acc(const int8_t* a, int64_t m, int64_t k, const PackedWeights& w, const int32_t* bias, int32_t* c,
                 Int8Isa isa) {
  gemm_rows("gemm_s8_acc", a, m, k, w, Epilogue::Kind::i32_bias, bias, nullptr, {c, nullptr, w.n}, isa);
}

void gemm_s8_requant(const int8_t* a, int64_t m, int64_t k, const PackedWeights& w, const int32_t* bias,
                     const OutputStage& stage, int8_t* y, Int8Isa isa) {
  gemm_rows("gemm_s8_requant", a, m, k, w, Epilogue::Kind::i8, bias, &stage, {nullptr, y, w.n}, isa);
}

void pack_patches(const int8_t* const* rows, int64_t k, int64_t np, Int8Isa isa, int8_t* out) {
  const int64_t ldp = patch_stride(np), groups = (k + 3) / 4;
  for (int64_t g = 0; g < groups; ++g) {
    const int8_t* r[4];
    for (int t = 0; t < 4; ++t) r[t] = 4 * g + t < k ? rows[4 * g + t] : nullptr;
    int8_t* o = out + g * ldp * 4;
#ifdef CRAYON_INT8_X86
    if (isa == Int8Isa::avx512vnni) {
      pack_group_512(r, ldp, o);
      continue;
    }
#endif
    pack_group(r, 0, ldp, isa == Int8Isa::avx512vnni, o);
  }
}

namespace {

// The channels-x-pixels product behind gemm_s8_patches and gemm_s8_patches_pairmax; out at
// channel 0, pixel 0.
void patches_run(const char* who, const PackedWeights& w, const int8_t* x, int64_t np, Epilogue::Kind kind,
                 const int32_t* bias, const OutputStage* stage, const RowOut& out, Int8Isa isa) {
  if (stage) check_stage(who, *stage, w.n);
  if (!int8_isa_supported(isa))
    throw std::invalid_argument(str(who, ": this CPU cannot run the ", int8_isa_name(isa), " path"));
  if (np <= 0) return;
  const int64_t groups = w.groups(), ldx = 4 * patch_stride(np);
  // AVX2 has half the registers and half the lanes: 4 channels by 16 pixels.
  const int64_t ct = isa == Int8Isa::avx2 ? 4 : 8, pt = isa == Int8Isa::avx2 ? 16 : kPixelTile;
  const int64_t per_pixel = kind == Epilogue::Kind::pair_max ? 2 : 1;  // pixels per output column
  Epilogue e;
  for (int64_t blk = 0; blk < w.blocks(); ++blk) {
    const int64_t nr = std::min(kBlock, w.n - blk * kBlock);
    fill_epilogue(e, kind, bias, stage, blk * kBlock, nr, w.k);
    const int8_t* wb = w.data.data() + blk * groups * kGroupBytes;
    const int32_t* rs = w.row_sums.data() + blk * kBlock;
    for (int64_t c0 = 0; c0 < nr; c0 += ct) {
      with_channels(std::min(ct, nr - c0), [&](auto mr) {
        constexpr int MR = decltype(mr)::value;
        for (int64_t q = 0; q < np; q += pt) {
          const int64_t valid = std::min(pt, np - q);
          const RowOut o = out.at(blk * kBlock + c0, q / per_pixel);
          switch (isa) {
#ifdef CRAYON_INT8_X86
            case Int8Isa::avx512vnni:
              tile_patches_vnni<MR>(wb + 4 * c0, groups, rs, x + 4 * q, ldx, e, c0, o, valid);
              break;
            case Int8Isa::avx2:
              if constexpr (MR <= 4) tile_patches_avx2<MR>(wb + 4 * c0, groups, x + 4 * q, ldx, e, c0, o, valid);
              break;
#endif
            default:
              tile_patches_portable<MR>(wb + 4 * c0, groups, x + 4 * q, ldx, e, c0, o, valid);
          }
        }
      });
    }
  }
}

}  // namespace

void gemm_s8_patches(const PackedWeights& w, const int8_t* x, int64_t np, const int32_t* bias,
                     const OutputStage& stage, int8_t* y, int64_t ldy, Int8Isa isa) {
  patches_run("gemm_s8_patches", w, x, np, Epilogue::Kind::i8, bias, &stage, {nullptr, y, ldy}, isa);
}

void gemm_s8_patches_pairmax(const PackedWeights& w, const int8_t* x, int64_t np, int32_t* y, int64_t ldy,
                             Int8Isa isa) {
  patches_run("gemm_s8_patches_pairmax", w, x, np, Epilogue::Kind::pair_max, nullptr, nullptr, {y, nullptr, ldy}, isa);
}

void requantize_max_rows(const int32_t* acc, int64_t n, int64_t rows, int64_t len, int64_t lda, int64_t ld_row,
                         int64_t k, const int32_t* bias, const OutputStage& stage, int8_t* y, Int8Isa isa) {
  check_stage("requantize_max_rows", stage, n);
  if (!int8_isa_supported(isa))
    throw std::invalid_argument(str("requantize_max_rows: this CPU cannot run the ", int8_isa_name(isa), " path"));
  std::vector<int32_t> pooled(size_t((rows * len + 15) / 16 * 16));  // one channel's maxima, contiguous
  Epilogue e;
  for (int64_t j0 = 0; j0 < n; j0 += kBlock) {
    fill_epilogue(e, Epilogue::Kind::i8, bias, &stage, j0, std::min(kBlock, n - j0), k);
    for (int64_t j = j0; j < std::min(n, j0 + kBlock); ++j) {
      const int32_t* a = acc + j * lda;
      int8_t* o = y + j * rows * len;
#ifdef CRAYON_INT8_X86
      if (isa == Int8Isa::avx512vnni) {
        requantize_max_rows_512(a, rows, len, ld_row, e, j - j0, pooled.data(), o);
        continue;
      }
      if (isa == Int8Isa::avx2) {
        requantize_max_rows_256(a, rows, len, ld_row, e, j - j0, pooled.data(), o);
        continue;
      }
#endif
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t i = 0; i < len; ++i)
          o[r * len + i] = e.requantize(std::max(a[2 * r * ld_row + i], a[(2 * r + 1) * ld_row + i]), j - j0);
    }
  }
}

void gemm_s8_reference(const int8_t* a, int64_t m, int64_t k, const int8_t* w, int64_t n, int32_t* c) {
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      int32_t s = 0;
      for (int64_t kk = 0; kk < k; ++kk) s += int32_t(a[i * k + kk]) * int32_t(w[j * k + kk]);
      c[i * n + j] = s;
    }
}

}  // namespace crayon
