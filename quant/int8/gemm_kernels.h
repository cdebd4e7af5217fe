#pragma once
// Internal to the int8 GEMM: included only by quant/int8/gemm*.cpp, never by other code (the
// public interface is quant/int8/gemm.h). What the shared part and the kernel files share:
//   gemm.cpp           packing (pack_weights, prepare_rows, pack_patches), the ISA selection and
//                      dispatch, the public functions of gemm.h, the reference
//   gemm_portable.cpp  the plain C++ kernels (any CPU)
//   gemm_avx2.cpp      the AVX2 kernels                 } x86-64 only, each function with its
//   gemm_avx512.cpp    the AVX-512 VNNI kernels         } own target attribute (see CMakeLists)
// The files are compiled with the project's baseline flags: only the functions marked
// CRAYON_TARGET_AVX2 / CRAYON_TARGET_VNNI use those instructions, and gemm.cpp calls them only
// for the path its caller asked for, which every public function of gemm.h but pack_patches
// checks with int8_isa_supported().
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>

#include "quant/int8/gemm.h"
#include "quant/int8/requant.h"

#include "core/simd.h"  // <immintrin.h>, with GCC bug 105593's warning silenced

#if defined(__x86_64__)
#define CRAYON_INT8_X86 1
#define CRAYON_TARGET_VNNI __attribute__((target("avx512vnni,avx512vl,avx512bw,avx512f")))
#define CRAYON_TARGET_AVX2 __attribute__((target("avx2")))
#endif

// Kernel loops over the rows of a register tile are unrolled before GCC decides where the
// accumulator array lives: without it, GCC 12 keeps copying every accumulator each iteration.
#define CRAYON_UNROLL _Pragma("GCC unroll 16")

namespace crayon::gemm_detail {

inline constexpr int64_t kBlock = 32;              // output channels per packed block
inline constexpr int64_t kGroupBytes = kBlock * 4;  // one group of 4 k for the whole block
inline constexpr int64_t kPixelTile = 32;          // pixels per tile of gemm_s8_patches (patch_stride's unit)

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
  alignas(64) int32_t shift[kBlock] = {};
  // The vector output stage (requantize_value's single rounding, see gemm_avx512.cpp), per
  // channel, split into the even and odd channels' 64-bit lanes: the right shift
  // t = 31 - shift, the addend 2^62 + 2^(t-1) - 1 (the 2^62 keeps the sum positive, so a
  // logical shift is an arithmetic one), and low32(2^(62-t)), which takes the 2^62 back off.
  alignas(64) int64_t t_even[kBlock / 2] = {}, t_odd[kBlock / 2] = {};
  alignas(64) int64_t add_even[kBlock / 2] = {}, add_odd[kBlock / 2] = {};
  alignas(64) int32_t offset[kBlock] = {};
  int32_t zero_point = 0, act_min = -128, act_max = 127;
  int32_t lo = 0, hi = 0;  // act_min - zero_point, act_max - zero_point: clamp, then add z (no overflow)
  // Whether some channel needs what only the scalar output stage does: a multiplier >= 1
  // (its product can leave int32) or a bias that could saturate acc + bias (|acc| <= 128 * 127
  // * k). Real layers never do; the vector kernels then run requantize() element by element.
  bool general = true;

  FixedPointMultiplier multiplier(int64_t j) const { return {mult[j], shift[j]}; }
  int64_t t(int64_t j) const { return j % 2 ? t_odd[j / 2] : t_even[j / 2]; }
  int64_t add(int64_t j) const { return j % 2 ? add_odd[j / 2] : add_even[j / 2]; }
  int8_t requantize(int32_t acc, int64_t j) const {
    return requantize_value(acc, bias[j], multiplier(j), zero_point, act_min, act_max);
  }
  int32_t add_bias(int32_t acc, int64_t j) const {
    const int64_t v = int64_t(acc) + bias[j];
    return int32_t(std::clamp<int64_t>(v, std::numeric_limits<int32_t>::min(), std::numeric_limits<int32_t>::max()));
  }
};

// Where a row-major tile writes: c (int32) or y (int8), row stride ld.
struct RowOut {
  int32_t* c = nullptr;
  int8_t* y = nullptr;
  int64_t ld = 0;
  RowOut at(int64_t row, int64_t col) const {
    return {c ? c + row * ld + col : nullptr, y ? y + row * ld + col : nullptr, ld};
  }
};

// The entry points of the kernel files, one set per ISA, the same three (four for VNNI) jobs:
//   rows_*                 out (rows, nr) = rows prepared rows of a (row stride lda = 4 * groups,
//                          prepare_rows) x one packed block w (32 channels, row sums rs), the
//                          first nr (<= 32) channels of each row finished by e (gemm_rows)
//   tile_patches_*<MR>     channels x pixels (gemm_s8_patches): MR channels (one row of w each,
//                          within one block, w at channel c0) by one tile of pixels of the
//                          patches (group stride ldx bytes; 32 pixels, 16 for AVX2); out at
//                          channel c0, pixel 0 of the tile (pixel pair 0 for pair_max); np
//                          pixels are valid. Instantiated for MR = 1..8 (AVX2: 1..4).
//   requantize_max_rows_*  one channel j of requantize_max_rows: the max of rows 2r and 2r + 1
//                          of a (row stride ld_row), requantized by e's channel j into y
//                          (rows x len), which overlaps neither a nor e; pooled is scratch for
//                          (rows * len + 15) / 16 * 16 sums
//   pack_group_512         pack_patches' transpose of one group for the VNNI path

// gemm_portable.cpp
void rows_portable(const int8_t* a, int64_t lda, int64_t rows, const int8_t* w, const Epilogue& e, const RowOut& out,
                   int64_t nr);
template <int MR>
void tile_patches_portable(const int8_t* w, int64_t groups, const int8_t* x, int64_t ldx, const Epilogue& e, int64_t c0,
                           const RowOut& out, int64_t np);
void requantize_max_rows_portable(const int32_t* a, int64_t rows, int64_t len, int64_t ld_row, const Epilogue& e,
                                  int64_t j, int8_t* __restrict y);

#ifdef CRAYON_INT8_X86
// gemm_avx2.cpp
CRAYON_TARGET_AVX2 void rows_avx2(const int8_t* a, int64_t lda, int64_t rows, const int8_t* w, const Epilogue& e,
                                  const RowOut& out, int64_t nr);
template <int MR>
CRAYON_TARGET_AVX2 void tile_patches_avx2(const int8_t* w, int64_t groups, const int8_t* x, int64_t ldx,
                                          const Epilogue& e, int64_t c0, const RowOut& out, int64_t np);
CRAYON_TARGET_AVX2 void requantize_max_rows_256(const int32_t* a, int64_t rows, int64_t len, int64_t ld_row,
                                                const Epilogue& e, int64_t j, int32_t* pooled, int8_t* y);

// gemm_avx512.cpp
CRAYON_TARGET_VNNI void rows_vnni(const int8_t* a, int64_t lda, int64_t rows, const int8_t* w, const int32_t* rs,
                                  const Epilogue& e, const RowOut& out, int64_t nr);
template <int MR>
CRAYON_TARGET_VNNI void tile_patches_vnni(const int8_t* w, int64_t groups, const int32_t* row_sums, const int8_t* x,
                                          int64_t ldx, const Epilogue& e, int64_t c0, const RowOut& out, int64_t np);
CRAYON_TARGET_VNNI void requantize_max_rows_512(const int32_t* a, int64_t rows, int64_t len, int64_t ld_row,
                                                const Epilogue& e, int64_t j, int32_t* pooled, int8_t* y);
CRAYON_TARGET_VNNI void pack_group_512(const int8_t* const r[4], int64_t ldp, int8_t* o);
#endif  // CRAYON_INT8_X86

}  // namespace crayon::gemm_detail
