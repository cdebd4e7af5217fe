#include "quant/int8/ops.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <stdexcept>
#include <vector>

#include "core/check.h"
#include "core/parallel.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace crayon {

namespace {

constexpr int64_t kScratchBytes = int64_t(1) << 18;  // per thread, for patches and for accumulators
// A thread of its own only for this much work (multiply-adds, or window elements for the
// pools): waking one costs more than a small image's whole layer, so lenet5 at batch 1 ran
// 2-3x slower on two threads than on one.
constexpr int64_t kMinWorkPerThread = int64_t(1) << 22;

void check_input(const char* who, const Tensor& x, int rank, int32_t in_zero_point) {
  if (x.dtype() != DType::i8 || x.ndim() != rank)
    throw std::invalid_argument(str(who, ": expected an int8 input of rank ", rank, ", got ", dtype_name(x.dtype()),
                                    " ", shape_str(x.shape())));
  if (in_zero_point < -128 || in_zero_point > 127)
    throw std::invalid_argument(str(who, ": input zero point ", in_zero_point, " outside [-128, 127]"));
}

void check_stage(const char* who, const OutputStage& s, int64_t n) {
  if (int64_t(s.multiplier.size()) != n)
    throw std::invalid_argument(str(who, ": output stage has ", s.multiplier.size(), " multipliers for ", n,
                                    " output channels"));
  if (s.zero_point < -128 || s.zero_point > 127 || s.act_min < -128 || s.act_max > 127 || s.act_min > s.act_max)
    throw std::invalid_argument(str(who, ": output zero point ", s.zero_point, ", activation range [", s.act_min,
                                    ", ", s.act_max, "] (expected all in [-128, 127], min <= max)"));
}

int32_t saturate_i32(int64_t v) {
  return int32_t(std::clamp<int64_t>(v, std::numeric_limits<int32_t>::min(), std::numeric_limits<int32_t>::max()));
}

// The per-element output stage of the oracles, written out instead of calling requantize.
int8_t output_value(int64_t acc, FixedPointMultiplier m, const OutputStage& s) {
  const int64_t v = s.zero_point + int64_t(multiply_by_quantized_multiplier(saturate_i32(acc), m));
  return int8_t(std::clamp<int64_t>(v, s.act_min, s.act_max));
}

struct Geom {
  int64_t B, C, H, W, OH, OW;
};

// The pooled size of (B, C, H, W) planes.
Geom pool_dims(const char* who, int64_t B, int64_t C, int64_t H, int64_t W, const Pool2dParams& p) {
  if (p.pad_h * 2 > p.kernel_h || p.pad_w * 2 > p.kernel_w)
    throw std::invalid_argument(str(who, ": padding (", p.pad_h, ", ", p.pad_w, ") must be at most half the kernel (",
                                    p.kernel_h, ", ", p.kernel_w, ")"));
  Geom g{B, C, H, W, 0, 0};
  g.OH = window_out_size(g.H, p.kernel_h, p.stride_h, p.pad_h, str(who, " height").c_str());
  g.OW = window_out_size(g.W, p.kernel_w, p.stride_w, p.pad_w, str(who, " width").c_str());
  return g;
}

Geom pool_geom(const char* who, const Tensor& x, const Pool2dParams& p) {
  check_input(who, x, 4, 0);
  return pool_dims(who, x.size(0), x.size(1), x.size(2), x.size(3), p);
}

Geom conv_geom(const char* who, const Tensor& x, int32_t in_zero_point, const Shape& w, const Conv2dParams& p) {
  check_input(who, x, 4, in_zero_point);
  if (w.size() != 4 || w[1] != x.size(1))
    throw std::invalid_argument(str(who, ": weight ", shape_str(w), " does not fit input ", shape_str(x.shape()),
                                    " (expected (O, ", x.size(1), ", KH, KW))"));
  Geom g{x.size(0), x.size(1), x.size(2), x.size(3), 0, 0};
  g.OH = window_out_size(g.H, int(w[2]), p.stride_h, p.pad_h, str(who, " height").c_str());
  g.OW = window_out_size(g.W, int(w[3]), p.stride_w, p.pad_w, str(who, " width").c_str());
  return g;
}

// Short runs (a LeNet row is 28 or 10 bytes) copied and filled inline: a libc call per run
// costs more than the bytes. Fixed-size memcpy compiles to single moves; the tails overlap.
inline void copy_short(int8_t* d, const int8_t* s, int64_t n) {
  if (n >= 16) {
    for (int64_t i = 0; i + 16 < n; i += 16) std::memcpy(d + i, s + i, 16);
    std::memcpy(d + n - 16, s + n - 16, 16);
  } else if (n >= 8) {
    std::memcpy(d, s, 8);
    std::memcpy(d + n - 8, s + n - 8, 8);
  } else if (n >= 4) {
    std::memcpy(d, s, 4);
    std::memcpy(d + n - 4, s + n - 4, 4);
  } else {
    for (int64_t i = 0; i < n; ++i) d[i] = s[i];
  }
}

inline void fill_short(int8_t* d, int8_t v, int64_t n) {
  if (n >= 16) {
    for (int64_t i = 0; i + 16 < n; i += 16) std::memset(d + i, v, 16);
    std::memset(d + n - 16, v, 16);
  } else {
    for (int64_t i = 0; i < n; ++i) d[i] = v;
  }
}

// Patch columns of one image for output pixels [p0, p0 + np), the classic im2col layout:
// rows[k][i] = entry k = (c, kh, kw) of the window of pixel p0 + i (the order of the
// weight's (O, C*KH*KW) rows), row stride ld >= np. Cells outside the image, and columns
// np..ld, get the input zero point, i.e. real 0. Each row is built in runs of one output row,
// which for stride 1 are one contiguous copy between two fills.
void im2col_rows(const int8_t* x, const Geom& g, int KH, int KW, const Conv2dParams& p, int64_t p0, int64_t np,
                 int8_t pad, int64_t ld, int8_t* rows) {
  for (int64_t c = 0; c < g.C; ++c)
    for (int kh = 0; kh < KH; ++kh)
      for (int kw = 0; kw < KW; ++kw) {
        int8_t* dst = rows + ((c * KH + kh) * KW + kw) * ld;
        for (int64_t i = 0; i < np;) {
          const int64_t oh = (p0 + i) / g.OW, ow0 = (p0 + i) % g.OW, n = std::min(g.OW - ow0, np - i);
          const int64_t ih = oh * p.stride_h - p.pad_h + kh;
          int8_t* d = dst + i;
          i += n;
          if (ih < 0 || ih >= g.H) {
            fill_short(d, pad, n);
            continue;
          }
          const int8_t* src = x + (c * g.H + ih) * g.W;
          if (p.stride_w == 1) {  // iw = ow - pad_w + kw is inside for ow in [pad_w - kw, W + pad_w - kw)
            const int64_t lo = std::clamp<int64_t>(p.pad_w - kw - ow0, 0, n);
            const int64_t hi = std::clamp<int64_t>(g.W + p.pad_w - kw - ow0, lo, n);
            fill_short(d, pad, lo);
            copy_short(d + lo, src + ow0 + lo - p.pad_w + kw, hi - lo);
            fill_short(d + hi, pad, n - hi);
          } else {
            for (int64_t j = 0; j < n; ++j) {
              const int64_t iw = (ow0 + j) * p.stride_w - p.pad_w + kw;
              d[j] = iw >= 0 && iw < g.W ? src[iw] : pad;
            }
          }
        }
        fill_short(dst + np, pad, ld - np);
      }
}

// One int8 convolution, cut into work items of whole output rows of one image. Stride 1
// (LeNet's, most nets') reads the windows straight from a padded copy of the image: with the
// pixels numbered p = oh * Wp + ow over the padded width Wp = W + 2 pad_w, entry (c, kh, kw)
// of every window is the contiguous run image[c][kh][kw + p], so no im2col is needed; the
// Wp - OW columns past each output row are computed and dropped. Other strides go through
// im2col_rows. Either way pack_patches makes the 4-byte groups and gemm_s8_patches computes
// O planes of pixels with the output stage fused.
struct ConvPlan {
  Geom g;
  int KH, KW;
  Conv2dParams p;
  const PackedWeights& w;
  const int32_t* bias;  // folded
  const OutputStage& stage;
  Int8Isa isa;
  int8_t pad;        // the input zero point, real 0
  bool direct;       // stride 1
  int64_t Hp, Wp;    // the padded image (direct)
  int64_t row_len;   // pixels per output row in the computed layout: Wp (direct) or OW

  ConvPlan(const Geom& g_, const PackedWeights& w_, const int32_t* bias_, const Conv2dParams& p_,
           const OutputStage& stage_, int32_t in_zero_point)
      : g(g_), KH(int(w_.shape[2])), KW(int(w_.shape[3])), p(p_), w(w_), bias(bias_), stage(stage_),
        isa(int8_isa()), pad(int8_t(in_zero_point)), direct(p_.stride_h == 1 && p_.stride_w == 1),
        Hp(g_.H + 2 * p_.pad_h), Wp(g_.W + 2 * p_.pad_w), row_len(direct ? Wp : g_.OW) {}

  // Pixels computed for n output rows: the last row stops at OW.
  int64_t pixels(int64_t n) const { return (n - 1) * row_len + g.OW; }
  // Output rows per work item: whole images unless their patches outgrow kScratchBytes.
  int64_t rows_per_item() const {
    const int64_t per_row = 4 * ((w.k + 3) / 4) * row_len;
    return std::clamp<int64_t>(kScratchBytes / per_row, 1, g.OH);
  }
};

// Scratch that grows and is never cleared: every byte read is written first.
template <typename T>
struct Buffer {
  std::unique_ptr<T[]> data;
  size_t size = 0;
  T* get(int64_t n) {
    if (size_t(n) > size) {
      data.reset(new T[size_t(n)]);  // default-initialized: no memset per call
      size = size_t(n);
    }
    return data.get();
  }
};

// One thread's scratch for one convolution (one plan).
struct ConvScratch {
  Buffer<int8_t> image, rows, patches, out;
  Buffer<int32_t> sums;
  std::vector<const int8_t*> ptr;  // the rows pack_patches reads
  const int8_t* ptr_base = nullptr;  // what ptr was computed for: buffer and first row
  int64_t ptr_oh0 = -1;
};

// The patches of output rows [oh0, oh1) of image x, packed into s.patches. Returns their
// pixel count, pixels(oh1 - oh0).
int64_t patch_rows(const ConvPlan& c, const int8_t* x, int64_t oh0, int64_t oh1, ConvScratch& s) {
  const Geom& g = c.g;
  const int64_t K = c.w.k, np = c.pixels(oh1 - oh0), ldp = patch_stride(np);
  s.ptr.resize(size_t(K));
  if (c.direct) {
    // The padded image, plus slack: the last window row is read ldp >= np bytes long, at most
    // 31 past the image's last byte.
    const int64_t plane = c.Hp * c.Wp;
    int8_t* im = s.image.get(g.C * plane + 64);
    for (int64_t ch = 0; ch < g.C; ++ch) {
      int8_t* dst = im + ch * plane;
      fill_short(dst, c.pad, c.p.pad_h * c.Wp);
      for (int64_t ih = 0; ih < g.H; ++ih) {
        int8_t* row = dst + (c.p.pad_h + ih) * c.Wp;
        fill_short(row, c.pad, c.p.pad_w);
        copy_short(row + c.p.pad_w, x + (ch * g.H + ih) * g.W, g.W);
        fill_short(row + c.p.pad_w + g.W, c.pad, c.p.pad_w);
      }
      fill_short(dst + (c.p.pad_h + g.H) * c.Wp, c.pad, c.p.pad_h * c.Wp);
    }
    fill_short(im + g.C * plane, c.pad, 64);
    if (s.ptr_base != im || s.ptr_oh0 != oh0)  // the same for every image of a batch
      for (int64_t ch = 0, k = 0; ch < g.C; ++ch)
        for (int kh = 0; kh < c.KH; ++kh)
          for (int kw = 0; kw < c.KW; ++kw) s.ptr[size_t(k++)] = im + ch * plane + (oh0 + kh) * c.Wp + kw;
    s.ptr_base = im;
  } else {
    int8_t* rows = s.rows.get(K * ldp);
    im2col_rows(x, g, c.KH, c.KW, c.p, oh0 * g.OW, np, c.pad, ldp, rows);
    for (int64_t k = 0; k < K; ++k) s.ptr[size_t(k)] = rows + k * ldp;
    s.ptr_base = nullptr;
  }
  s.ptr_oh0 = oh0;
  pack_patches(s.ptr.data(), K, np, c.isa, s.patches.get(patch_bytes(K, np)));
  return np;
}

// Output rows [oh0, oh1) of image x: O planes of n = oh1 - oh0 rows, plane stride
// pixels(n), row stride row_len (only the first OW of each row are outputs).
const int8_t* conv_rows(const ConvPlan& c, const int8_t* x, int64_t oh0, int64_t oh1, ConvScratch& s) {
  const int64_t np = patch_rows(c, x, oh0, oh1, s);
  int8_t* out = s.out.get(c.w.n * np);
  gemm_s8_patches(c.w, s.patches.data.get(), np, c.bias, c.stage, out, np, c.isa);
  return out;
}

// Image x convolved and max pooled 2x2 / stride 2 into y (O, PH, PW), pooling the int32 sums
// before the output stage (gemm_s8_patches_pairmax): for stride-1 convs whose padded width
// Wp is even, so that pixel pairs (p, p + 1), p even, are the column pairs of a row.
void conv_pool_2x2(const ConvPlan& c, const int8_t* x, int64_t PH, int64_t PW, ConvScratch& s, int8_t* y) {
  const int64_t np = patch_rows(c, x, 0, c.g.OH, s), O = c.w.n, ld = (np + 1) / 2, half = c.Wp / 2;
  int32_t* pairs = s.sums.get(O * ld);
  gemm_s8_patches_pairmax(c.w, s.patches.data.get(), np, pairs, ld, c.isa);
  requantize_max_rows(pairs, O, PH, PW, ld, half, c.w.k, c.bias, c.stage, y, c.isa);  // conv rows 2r, 2r + 1
}

#if defined(__SSE2__)
// The max of two rows of 16 bytes, then of each pair of neighbours -> 8 bytes. SSE2 has only
// an unsigned byte max, so bytes are flipped to x + 128 and back; pairs are split as 16-bit
// halves.
inline __m128i pair_max(__m128i a, __m128i b) {
  const __m128i flip = _mm_set1_epi8(int8_t(0x80));
  const __m128i v = _mm_max_epu8(_mm_xor_si128(a, flip), _mm_xor_si128(b, flip));
  const __m128i m = _mm_max_epi16(_mm_and_si128(v, _mm_set1_epi16(0xFF)), _mm_srli_epi16(v, 8));
  return _mm_xor_si128(_mm_packus_epi16(m, m), flip);
}
#endif

// One output row of a 2x2, stride 2 max pool: n outputs from rows r0 and r1, in steps of 8 (16
// input bytes) or 4; a short row's last step overlaps the one before.
void maxpool2x2_row(const int8_t* r0, const int8_t* r1, int64_t n, int8_t* y) {
  int64_t ow = 0;
#if defined(__SSE2__)
  if (n >= 8) {
    for (;; ow += 8) {
      ow = std::min(ow, n - 8);
      const __m128i v = pair_max(_mm_loadu_si128(reinterpret_cast<const __m128i*>(r0 + 2 * ow)),
                                 _mm_loadu_si128(reinterpret_cast<const __m128i*>(r1 + 2 * ow)));
      _mm_storel_epi64(reinterpret_cast<__m128i*>(y + ow), v);
      if (ow + 8 == n) return;
    }
  }
  if (n >= 4) {
    for (;; ow += 4) {
      ow = std::min(ow, n - 4);
      const __m128i v = pair_max(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(r0 + 2 * ow)),
                                 _mm_loadl_epi64(reinterpret_cast<const __m128i*>(r1 + 2 * ow)));
      const int32_t four = _mm_cvtsi128_si32(v);
      std::memcpy(y + ow, &four, 4);
      if (ow + 4 == n) return;
    }
  }
#endif
  for (; ow < n; ++ow) y[ow] = std::max({r0[2 * ow], r0[2 * ow + 1], r1[2 * ow], r1[2 * ow + 1]});
}

// Max pooling of one plane: x (H, W) with row stride ld -> y (OH, OW) contiguous. Padding
// cells never win.
void maxpool_plane(const int8_t* x, int64_t H, int64_t W, int64_t ld, const Pool2dParams& p, int64_t OH, int64_t OW,
                   int8_t* y) {
  if (p.kernel_h == 2 && p.kernel_w == 2 && p.stride_h == 2 && p.stride_w == 2 && p.pad_h == 0 && p.pad_w == 0) {
    for (int64_t oh = 0; oh < OH; ++oh) maxpool2x2_row(x + 2 * oh * ld, x + (2 * oh + 1) * ld, OW, y + oh * OW);
    return;
  }
  for (int64_t oh = 0; oh < OH; ++oh)
    for (int64_t ow = 0; ow < OW; ++ow) {
      const PoolWindow win = pool_window(p, H, W, oh, ow);
      int8_t best = -128;
      for (int64_t ih = win.h0; ih < win.h1; ++ih)
        for (int64_t iw = win.w0; iw < win.w1; ++iw) best = std::max(best, x[ih * ld + iw]);
      y[oh * OW + ow] = best;
    }
}

}  // namespace

Tensor linear_s8_acc(const Tensor& x, int32_t in_zero_point, const PackedWeights& w, std::span<const int32_t> bias) {
  // x: (B, K), w: (N, K) -> (B, N) int32
  check_input("linear_s8", x, 2, in_zero_point);
  if (x.size(1) != w.k)
    throw std::invalid_argument(str("linear_s8: input ", shape_str(x.shape()), " against weight (", w.n, ", ", w.k, ")"));
  const std::vector<int32_t> folded = fold_input_zero_point(bias, w, in_zero_point);
  Tensor acc = Tensor::empty({x.size(0), w.n}, DType::i32);
  gemm_s8_acc(x.data_as<int8_t>(), x.size(0), w.k, w, folded.data(), acc.data_as<int32_t>());
  return acc;
}

Tensor linear_s8(const Tensor& x, int32_t in_zero_point, const PackedWeights& w, std::span<const int32_t> bias,
                 const OutputStage& out) {
  // x: (B, K), w: (N, K) -> (B, N) int8
  check_stage("linear_s8", out, w.n);
  check_input("linear_s8", x, 2, in_zero_point);
  if (x.size(1) != w.k)
    throw std::invalid_argument(str("linear_s8: input ", shape_str(x.shape()), " against weight (", w.n, ", ", w.k, ")"));
  const std::vector<int32_t> folded = fold_input_zero_point(bias, w, in_zero_point);
  Tensor y = Tensor::empty({x.size(0), w.n}, DType::i8);
  gemm_s8_requant(x.data_as<int8_t>(), x.size(0), w.k, w, folded.data(), out, y.data_as<int8_t>());
  return y;
}

Tensor conv2d_s8(const Tensor& x, int32_t in_zero_point, const PackedWeights& w, std::span<const int32_t> bias,
                 const Conv2dParams& p, const OutputStage& out) {
  // x: (B, C, H, W), w: (O, C, KH, KW) -> (B, O, OH, OW)
  const Geom g = conv_geom("conv2d_s8", x, in_zero_point, w.shape, p);
  check_stage("conv2d_s8", out, w.n);
  const std::vector<int32_t> folded = fold_input_zero_point(bias, w, in_zero_point);
  const ConvPlan plan(g, w, folded.data(), p, out, in_zero_point);
  const int64_t O = w.n, P = g.OH * g.OW;
  Tensor y = Tensor::empty({g.B, O, g.OH, g.OW}, DType::i8);
  // Work items: rows_per_item output rows of one image, and at least one item per thread
  // (when there is kMinWorkPerThread for each).
  int64_t rows = plan.rows_per_item();
  if (g.B < num_threads()) rows = std::min(rows, std::max<int64_t>(1, g.B * g.OH / num_threads()));
  const int64_t per_image = (g.OH + rows - 1) / rows;
  const int64_t item_macs = std::max<int64_t>(1, rows * g.OW * O * w.k);
  const int8_t* px = x.data_as<int8_t>();
  int8_t* py = y.data_as<int8_t>();
  parallel_for(g.B * per_image, [&](int64_t begin, int64_t end) {
    ConvScratch s;
    for (int64_t t = begin; t < end; ++t) {
      const int64_t b = t / per_image, oh0 = (t % per_image) * rows, oh1 = std::min(g.OH, oh0 + rows);
      const int8_t* planes = conv_rows(plan, px + b * g.C * g.H * g.W, oh0, oh1, s);
      const int64_t ld_plane = plan.pixels(oh1 - oh0);
      for (int64_t o = 0; o < O; ++o)
        for (int64_t oh = oh0; oh < oh1; ++oh)
          copy_short(py + (b * O + o) * P + oh * g.OW, planes + o * ld_plane + (oh - oh0) * plan.row_len, g.OW);
    }
  }, std::max<int64_t>(1, kMinWorkPerThread / item_macs));
  return y;
}

Tensor conv2d_maxpool_s8(const Tensor& x, int32_t in_zero_point, const PackedWeights& w, std::span<const int32_t> bias,
                         const Conv2dParams& p, const OutputStage& out, const Pool2dParams& pool) {
  // x: (B, C, H, W), w: (O, C, KH, KW) -> conv (B, O, OH, OW) -> pooled (B, O, PH, PW)
  const Geom g = conv_geom("conv2d_maxpool_s8", x, in_zero_point, w.shape, p);
  check_stage("conv2d_maxpool_s8", out, w.n);
  const Geom pg = pool_dims("conv2d_maxpool_s8", g.B, w.n, g.OH, g.OW, pool);
  // Fewer images than threads, and enough work to share: the unfused pair splits each image's
  // rows between threads.
  if (g.B < num_threads() && g.B * g.OH * g.OW * w.n * w.k >= 2 * kMinWorkPerThread)
    return maxpool2d_s8(conv2d_s8(x, in_zero_point, w, bias, p, out), pool);
  const std::vector<int32_t> folded = fold_input_zero_point(bias, w, in_zero_point);
  const ConvPlan plan(g, w, folded.data(), p, out, in_zero_point);
  const int64_t O = w.n, PP = pg.OH * pg.OW;
  Tensor y = Tensor::empty({g.B, O, pg.OH, pg.OW}, DType::i8);
  const int8_t* px = x.data_as<int8_t>();
  int8_t* py = y.data_as<int8_t>();
  const bool pool_first =
      plan.direct && plan.Wp % 2 == 0 && pool.kernel_h == 2 && pool.kernel_w == 2 && pool.stride_h == 2 &&
      pool.stride_w == 2 && pool.pad_h == 0 && pool.pad_w == 0 &&
      std::all_of(out.multiplier.begin(), out.multiplier.end(), [](FixedPointMultiplier m) { return m.multiplier >= 0; });
  parallel_parts(g.B, [&](int, int64_t begin, int64_t end) {  // whole images: every window inside
    ConvScratch s;
    for (int64_t b = begin; b < end; ++b) {
      if (pool_first) {
        conv_pool_2x2(plan, px + b * g.C * g.H * g.W, pg.OH, pg.OW, s, py + b * O * PP);
        continue;
      }
      const int8_t* planes = conv_rows(plan, px + b * g.C * g.H * g.W, 0, g.OH, s);
      for (int64_t o = 0; o < O; ++o)
        maxpool_plane(planes + o * plan.pixels(g.OH), g.OH, g.OW, plan.row_len, pool, pg.OH, pg.OW,
                      py + (b * O + o) * PP);
    }
  });
  return y;
}

Tensor maxpool2d_s8(const Tensor& x, const Pool2dParams& p) {
  // x: (B, C, H, W) -> (B, C, OH, OW)
  const Geom g = pool_geom("maxpool2d_s8", x, p);
  Tensor y = Tensor::empty({g.B, g.C, g.OH, g.OW}, DType::i8);
  const int8_t* px = x.data_as<int8_t>();
  int8_t* py = y.data_as<int8_t>();
  parallel_for(g.B * g.C, [&](int64_t bc0, int64_t bc1) {
    for (int64_t bc = bc0; bc < bc1; ++bc)
      maxpool_plane(px + bc * g.H * g.W, g.H, g.W, g.W, p, g.OH, g.OW, py + bc * g.OH * g.OW);
  }, std::max<int64_t>(1, kMinWorkPerThread / std::max<int64_t>(1, g.OH * g.OW * p.kernel_h * p.kernel_w)));
  return y;
}

Tensor avgpool2d_s8(const Tensor& x, int32_t in_zero_point, const Pool2dParams& p, FixedPointMultiplier m,
                    int32_t out_zero_point, int32_t act_min, int32_t act_max) {
  // x: (B, C, H, W) -> (B, C, OH, OW)
  const Geom g = pool_geom("avgpool2d_s8", x, p);
  check_input("avgpool2d_s8", x, 4, in_zero_point);
  const OutputStage stage{{m}, out_zero_point, act_min, act_max};
  check_stage("avgpool2d_s8", stage, 1);
  Tensor y = Tensor::empty({g.B, g.C, g.OH, g.OW}, DType::i8);
  const int8_t* px = x.data_as<int8_t>();
  int8_t* py = y.data_as<int8_t>();
  parallel_for(g.B * g.C, [&](int64_t bc0, int64_t bc1) {
    for (int64_t bc = bc0; bc < bc1; ++bc) {
      const int8_t* plane = px + bc * g.H * g.W;
      for (int64_t oh = 0; oh < g.OH; ++oh)
        for (int64_t ow = 0; ow < g.OW; ++ow) {
          const PoolWindow win = pool_window(p, g.H, g.W, oh, ow);
          int64_t sum = 0;  // padding cells hold z_in: they add 0
          for (int64_t ih = win.h0; ih < win.h1; ++ih)
            for (int64_t iw = win.w0; iw < win.w1; ++iw) sum += plane[ih * g.W + iw] - in_zero_point;
          py[(bc * g.OH + oh) * g.OW + ow] = output_value(sum, m, stage);
        }
    }
  }, std::max<int64_t>(1, kMinWorkPerThread / std::max<int64_t>(1, g.OH * g.OW * p.kernel_h * p.kernel_w)));
  return y;
}

Tensor linear_s8_acc_reference(const Tensor& x, int32_t in_zero_point, const Tensor& w, std::span<const int32_t> bias) {
  // x: (B, K), w: (N, K) -> (B, N) int32
  check_input("linear_s8_reference", x, 2, in_zero_point);
  if (w.dtype() != DType::i8 || w.ndim() != 2 || w.size(1) != x.size(1))
    throw std::invalid_argument(str("linear_s8_reference: input ", shape_str(x.shape()), " against weight ",
                                    dtype_name(w.dtype()), " ", shape_str(w.shape())));
  const int64_t B = x.size(0), N = w.size(0), K = w.size(1);
  if (!bias.empty() && int64_t(bias.size()) != N)
    throw std::invalid_argument(str("linear_s8_reference: bias has ", bias.size(), " entries for ", N, " outputs"));
  Tensor acc = Tensor::empty({B, N}, DType::i32);
  const int8_t *px = x.data_as<int8_t>(), *pw = w.data_as<int8_t>();
  for (int64_t b = 0; b < B; ++b)
    for (int64_t j = 0; j < N; ++j) {
      int64_t sum = bias.empty() ? 0 : bias[size_t(j)];
      for (int64_t k = 0; k < K; ++k) sum += int64_t(px[b * K + k] - in_zero_point) * pw[j * K + k];
      acc.data_as<int32_t>()[b * N + j] = saturate_i32(sum);
    }
  return acc;
}

Tensor linear_s8_reference(const Tensor& x, int32_t in_zero_point, const Tensor& w, std::span<const int32_t> bias,
                           const OutputStage& out) {
  // x: (B, K), w: (N, K) -> (B, N)
  const Tensor acc = linear_s8_acc_reference(x, in_zero_point, w, bias);
  const int64_t B = acc.size(0), N = acc.size(1);
  check_stage("linear_s8_reference", out, N);
  Tensor y = Tensor::empty({B, N}, DType::i8);
  for (int64_t i = 0; i < B * N; ++i)
    y.data_as<int8_t>()[i] = output_value(acc.data_as<int32_t>()[i], out.multiplier[size_t(i % N)], out);
  return y;
}

Tensor conv2d_s8_reference(const Tensor& x, int32_t in_zero_point, const Tensor& w, std::span<const int32_t> bias,
                           const Conv2dParams& p, const OutputStage& out) {
  // x: (B, C, H, W), w: (O, C, KH, KW) -> (B, O, OH, OW)
  if (w.dtype() != DType::i8)
    throw std::invalid_argument(str("conv2d_s8_reference: weight dtype ", dtype_name(w.dtype()), " (expected int8)"));
  const Geom g = conv_geom("conv2d_s8_reference", x, in_zero_point, w.shape(), p);
  const int64_t O = w.size(0), KH = w.size(2), KW = w.size(3);
  check_stage("conv2d_s8_reference", out, O);
  if (!bias.empty() && int64_t(bias.size()) != O)
    throw std::invalid_argument(str("conv2d_s8_reference: bias has ", bias.size(), " entries for ", O, " outputs"));
  Tensor y = Tensor::empty({g.B, O, g.OH, g.OW}, DType::i8);
  const int8_t *px = x.data_as<int8_t>(), *pw = w.data_as<int8_t>();
  int8_t* py = y.data_as<int8_t>();
  for (int64_t b = 0; b < g.B; ++b)
    for (int64_t o = 0; o < O; ++o)
      for (int64_t oh = 0; oh < g.OH; ++oh)
        for (int64_t ow = 0; ow < g.OW; ++ow) {
          int64_t acc = bias.empty() ? 0 : bias[size_t(o)];
          for (int64_t c = 0; c < g.C; ++c)
            for (int64_t kh = 0; kh < KH; ++kh)
              for (int64_t kw = 0; kw < KW; ++kw) {
                const int64_t ih = oh * p.stride_h - p.pad_h + kh, iw = ow * p.stride_w - p.pad_w + kw;
                if (ih < 0 || ih >= g.H || iw < 0 || iw >= g.W) continue;  // padding: real 0
                acc += int64_t(px[((b * g.C + c) * g.H + ih) * g.W + iw] - in_zero_point) *
                       pw[((o * g.C + c) * KH + kh) * KW + kw];
              }
          py[((b * O + o) * g.OH + oh) * g.OW + ow] = output_value(acc, out.multiplier[size_t(o)], out);
        }
  return y;
}

}  // namespace crayon
