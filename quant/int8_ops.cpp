#include "quant/int8_ops.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <vector>

#include "core/check.h"
#include "core/parallel.h"

namespace crayon {

namespace {

constexpr int64_t kScratchBytes = int64_t(1) << 18;  // per thread, for patches and for accumulators

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

Geom pool_geom(const char* who, const Tensor& x, const Pool2dParams& p) {
  check_input(who, x, 4, 0);
  if (p.pad_h * 2 > p.kernel_h || p.pad_w * 2 > p.kernel_w)
    throw std::invalid_argument(str(who, ": padding (", p.pad_h, ", ", p.pad_w, ") must be at most half the kernel (",
                                    p.kernel_h, ", ", p.kernel_w, ")"));
  Geom g{x.size(0), x.size(1), x.size(2), x.size(3), 0, 0};
  g.OH = window_out_size(g.H, p.kernel_h, p.stride_h, p.pad_h, str(who, " height").c_str());
  g.OW = window_out_size(g.W, p.kernel_w, p.stride_w, p.pad_w, str(who, " width").c_str());
  return g;
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

// Patch rows of one image for output pixels [p0, p0 + np): rows[i] = x[:, window of pixel
// p0 + i] flattened as (c, kh, kw), the layout of the weight's (O, C*KH*KW) rows. Cells
// outside the image get the input zero point, i.e. real 0.
void im2row(const int8_t* x, const Geom& g, int KH, int KW, const Conv2dParams& p, int64_t p0, int64_t np,
            int8_t pad, int8_t* rows) {
  const int64_t K = g.C * KH * KW;
  for (int64_t i = 0; i < np; ++i) {
    const int64_t oh = (p0 + i) / g.OW, ow = (p0 + i) % g.OW;
    const int64_t ih0 = oh * p.stride_h - p.pad_h, iw0 = ow * p.stride_w - p.pad_w;
    const bool inside_w = iw0 >= 0 && iw0 + KW <= g.W;
    for (int64_t c = 0; c < g.C; ++c)
      for (int kh = 0; kh < KH; ++kh) {
        int8_t* dst = rows + i * K + (c * KH + kh) * KW;
        const int64_t ih = ih0 + kh;
        if (ih < 0 || ih >= g.H) {
          std::memset(dst, pad, size_t(KW));
          continue;
        }
        const int8_t* src = x + (c * g.H + ih) * g.W;
        if (inside_w) {
          std::memcpy(dst, src + iw0, size_t(KW));
        } else {
          for (int kw = 0; kw < KW; ++kw) {
            const int64_t iw = iw0 + kw;
            dst[kw] = iw >= 0 && iw < g.W ? src[iw] : pad;
          }
        }
      }
  }
}

}  // namespace

Tensor linear_s8_acc(const Tensor& x, int32_t in_zero_point, const PackedWeights& w, std::span<const int32_t> bias) {
  // x: (B, K), w: (N, K) -> (B, N) int32
  check_input("linear_s8", x, 2, in_zero_point);
  if (x.size(1) != w.k)
    throw std::invalid_argument(str("linear_s8: input ", shape_str(x.shape()), " against weight (", w.n, ", ", w.k, ")"));
  const std::vector<int32_t> folded = fold_input_zero_point(bias, w, in_zero_point);
  const int64_t B = x.size(0), N = w.n;
  Tensor acc = Tensor::empty({B, N}, DType::i32);
  int32_t* pa = acc.data_as<int32_t>();
  gemm_s8(x.data_as<int8_t>(), B, w.k, w, pa);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t j = 0; j < N; ++j) pa[b * N + j] = saturate_i32(int64_t(pa[b * N + j]) + folded[size_t(j)]);
  return acc;
}

Tensor linear_s8(const Tensor& x, int32_t in_zero_point, const PackedWeights& w, std::span<const int32_t> bias,
                 const OutputStage& out) {
  // x: (B, K), w: (N, K) -> (B, N) int8
  check_stage("linear_s8", out, w.n);
  const Tensor acc = linear_s8_acc(x, in_zero_point, w, bias);
  Tensor y = Tensor::empty(acc.shape(), DType::i8);
  requantize(acc.data_as<int32_t>(), acc.size(0), w.n, nullptr, out, y.data_as<int8_t>(), false);
  return y;
}

Tensor conv2d_s8(const Tensor& x, int32_t in_zero_point, const PackedWeights& w, std::span<const int32_t> bias,
                 const Conv2dParams& p, const OutputStage& out) {
  // x: (B, C, H, W), w: (O, C, KH, KW) -> (B, O, OH, OW)
  const Geom g = conv_geom("conv2d_s8", x, in_zero_point, w.shape, p);
  check_stage("conv2d_s8", out, w.n);
  const std::vector<int32_t> folded = fold_input_zero_point(bias, w, in_zero_point);
  const int KH = int(w.shape[2]), KW = int(w.shape[3]);
  const int64_t O = w.n, K = w.k, P = g.OH * g.OW;
  Tensor y = Tensor::empty({g.B, O, g.OH, g.OW}, DType::i8);
  // Work items are chunks of one image's pixels: small enough that patches (chunk x K) and
  // accumulators (chunk x O) stay within kScratchBytes each, and at least one per thread.
  int64_t chunk = std::min({P, std::max<int64_t>(1, kScratchBytes / K), std::max<int64_t>(1, kScratchBytes / (4 * O))});
  if (g.B < num_threads()) chunk = std::min(chunk, std::max<int64_t>(1, (g.B * P + num_threads() - 1) / num_threads()));
  const int64_t per_image = (P + chunk - 1) / chunk;
  const int8_t* px = x.data_as<int8_t>();
  int8_t* py = y.data_as<int8_t>();
  parallel_parts(g.B * per_image, [&](int, int64_t begin, int64_t end) {
    std::vector<int8_t> rows(size_t(chunk * K));
    std::vector<int32_t> acc(size_t(chunk * O));
    for (int64_t t = begin; t < end; ++t) {
      const int64_t b = t / per_image, p0 = (t % per_image) * chunk, np = std::min(chunk, P - p0);
      im2row(px + b * g.C * g.H * g.W, g, KH, KW, p, p0, np, int8_t(in_zero_point), rows.data());
      gemm_s8(rows.data(), np, K, w, acc.data());  // nested inside a part: runs on this thread
      requantize(acc.data(), np, O, folded.data(), out, py + b * O * P + p0, /*transpose=*/true, /*ld_out=*/P);
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
    for (int64_t bc = bc0; bc < bc1; ++bc) {
      const int8_t* plane = px + bc * g.H * g.W;
      for (int64_t oh = 0; oh < g.OH; ++oh) {
        const int64_t ih0 = oh * p.stride_h - p.pad_h;
        const int64_t h_lo = std::max<int64_t>(0, ih0), h_hi = std::min<int64_t>(g.H, ih0 + p.kernel_h);
        for (int64_t ow = 0; ow < g.OW; ++ow) {
          const int64_t iw0 = ow * p.stride_w - p.pad_w;
          const int64_t w_lo = std::max<int64_t>(0, iw0), w_hi = std::min<int64_t>(g.W, iw0 + p.kernel_w);
          int8_t best = -128;
          for (int64_t ih = h_lo; ih < h_hi; ++ih)
            for (int64_t iw = w_lo; iw < w_hi; ++iw) best = std::max(best, plane[ih * g.W + iw]);
          py[(bc * g.OH + oh) * g.OW + ow] = best;
        }
      }
    }
  });
  return y;
}

Tensor avgpool2d_s8(const Tensor& x, int32_t in_zero_point, const Pool2dParams& p, FixedPointMultiplier m,
                    int32_t out_zero_point) {
  // x: (B, C, H, W) -> (B, C, OH, OW)
  const Geom g = pool_geom("avgpool2d_s8", x, p);
  check_input("avgpool2d_s8", x, 4, in_zero_point);
  const OutputStage stage{{m}, out_zero_point, -128, 127};
  check_stage("avgpool2d_s8", stage, 1);
  Tensor y = Tensor::empty({g.B, g.C, g.OH, g.OW}, DType::i8);
  const int8_t* px = x.data_as<int8_t>();
  int8_t* py = y.data_as<int8_t>();
  parallel_for(g.B * g.C, [&](int64_t bc0, int64_t bc1) {
    for (int64_t bc = bc0; bc < bc1; ++bc) {
      const int8_t* plane = px + bc * g.H * g.W;
      for (int64_t oh = 0; oh < g.OH; ++oh) {
        const int64_t ih0 = oh * p.stride_h - p.pad_h;
        const int64_t h_lo = std::max<int64_t>(0, ih0), h_hi = std::min<int64_t>(g.H, ih0 + p.kernel_h);
        for (int64_t ow = 0; ow < g.OW; ++ow) {
          const int64_t iw0 = ow * p.stride_w - p.pad_w;
          const int64_t w_lo = std::max<int64_t>(0, iw0), w_hi = std::min<int64_t>(g.W, iw0 + p.kernel_w);
          int64_t sum = 0;  // padding cells hold z_in: they add 0
          for (int64_t ih = h_lo; ih < h_hi; ++ih)
            for (int64_t iw = w_lo; iw < w_hi; ++iw) sum += plane[ih * g.W + iw] - in_zero_point;
          py[(bc * g.OH + oh) * g.OW + ow] = output_value(sum, m, stage);
        }
      }
    }
  });
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
