// The portable int8 GEMM kernels: plain C++ over the packed layouts (quant/int8/gemm_kernels.h),
// for any CPU.
#include <algorithm>
#include <cstdint>

#include "quant/int8/gemm_kernels.h"

namespace crayon::gemm_detail {

namespace {

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

}  // namespace

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

// The tiles patches_run (gemm.cpp) dispatches to: 1..8 channels.
#define CRAYON_TILE_PATCHES_PORTABLE(MR)                                                                  \
  template void tile_patches_portable<MR>(const int8_t*, int64_t, const int8_t*, int64_t, const Epilogue&, \
                                          int64_t, const RowOut&, int64_t);
CRAYON_TILE_PATCHES_PORTABLE(1)
CRAYON_TILE_PATCHES_PORTABLE(2)
CRAYON_TILE_PATCHES_PORTABLE(3)
CRAYON_TILE_PATCHES_PORTABLE(4)
CRAYON_TILE_PATCHES_PORTABLE(5)
CRAYON_TILE_PATCHES_PORTABLE(6)
CRAYON_TILE_PATCHES_PORTABLE(7)
CRAYON_TILE_PATCHES_PORTABLE(8)
#undef CRAYON_TILE_PATCHES_PORTABLE

// One channel of requantize_max_rows, element by element. y is __restrict because an int8_t
// store may alias anything: without it GCC reloads e's fields after every store (half as many
// instructions again in this loop). Inside requantize_max_rows, where the loop was before the
// split, e was a local and needed no hint.
void requantize_max_rows_portable(const int32_t* a, int64_t rows, int64_t len, int64_t ld_row, const Epilogue& e,
                                  int64_t j, int8_t* __restrict y) {
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t i = 0; i < len; ++i)
      y[r * len + i] = e.requantize(std::max(a[2 * r * ld_row + i], a[(2 * r + 1) * ld_row + i]), j);
}

}  // namespace crayon::gemm_detail
