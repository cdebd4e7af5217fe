// The direct convolution's drivers: padding, weight packing and the split over threads.
// The kernels are in conv_direct_kernels.h (conv_direct.h gives the scheme).
#include "core/conv_direct.h"

#include <algorithm>
#include <vector>

#include "core/parallel.h"
#include "core/tensor.h"

namespace crayon::conv_detail {

const DirectKernels* direct_kernels(FloatIsa isa) {
#ifdef CRAYON_SGEMM_X86
  if (isa == FloatIsa::avx512) return &kDirectAvx512;
  if (isa == FloatIsa::avx2) return &kDirectAvx2;
#endif
  (void)isa;
  return nullptr;
}

bool direct_applies(int KH, int KW, const Conv2dParams& p) {
  return p.stride_h == 1 && p.stride_w == 1 && p.pad_h <= KH - 1 && p.pad_w <= KW - 1 && KW <= kMaxDirectKernel;
}

PaddedPlane padded_plane(int64_t H, int64_t W, int64_t OW, int KW, int pad_h, int pad_w, int lanes) {
  const int64_t vector_reach = (OW + lanes - 1) / lanes * lanes + KW - 1;
  return {H + 2 * pad_h, std::max<int64_t>(W + 2 * pad_w, vector_reach)};
}

void pad_into(const float* x, int64_t C, int64_t H, int64_t W, int pad_h, int pad_w, PaddedPlane pp, float* xp) {
  for (int64_t c = 0; c < C; ++c) {
    float* p = xp + c * pp.Hp * pp.Wp;
    std::fill_n(p, pad_h * pp.Wp, 0.f);
    for (int64_t h = 0; h < H; ++h) {
      float* row = p + (h + pad_h) * pp.Wp;
      std::fill_n(row, pad_w, 0.f);
      std::copy_n(x + (c * H + h) * W, W, row + pad_w);
      std::fill(row + pad_w + W, row + pp.Wp, 0.f);
    }
    std::fill(p + (H + pad_h) * pp.Wp, p + pp.Hp * pp.Wp, 0.f);
  }
}

namespace {

int64_t round_up(int64_t n, int64_t m) { return (n + m - 1) / m * m; }

// One image of `in` (C_in, H_in, W_in) correlated with packed weights into `out`, for every
// image of the batch, threads splitting the batch.
void correlate_batch(const DirectKernels& k, int64_t B, const float* in, int64_t C_in, int64_t H_in, int64_t W_in,
                     int pad_h, int pad_w, const std::vector<float>& wp, int64_t o_stride, int ob, const float* bias,
                     bool accumulate, float* out, int64_t C_out, int64_t H_out, int64_t W_out, int KH, int KW) {
  const PaddedPlane pp = padded_plane(H_in, W_in, W_out, KW, pad_h, pad_w, k.lanes);
  parallel_for(B, [&](int64_t b0, int64_t b1) {
    Tensor scratch = Tensor::empty({C_in * pp.Hp * pp.Wp});
    FwdTask t{scratch.data(), pp.Hp, pp.Wp, wp.data(), o_stride, ob, bias, accumulate, nullptr,
              C_in, C_out, H_out, W_out, KH, KW};
    for (int64_t b = b0; b < b1; ++b) {
      pad_into(in + b * C_in * H_in * W_in, C_in, H_in, W_in, pad_h, pad_w, pp, scratch.data());
      t.y = out + b * C_out * H_out * W_out;
      k.forward(t);
    }
  });
}

}  // namespace

void direct_forward(const DirectKernels& k, const DirectGeom& g, int64_t B, const float* x, const float* w,
                    const float* bias, float* y) {
  const int ob = k.forward_block(g.O, g.OW);
  const int64_t o_stride = round_up(g.O, ob), kk = int64_t(g.KH) * g.KW;
  std::vector<float> wp(size_t(g.C * kk * o_stride), 0.f);  // wp[(c*KH + kh)*KW + kw][o]
  for (int64_t o = 0; o < g.O; ++o)
    for (int64_t j = 0; j < g.C * kk; ++j) wp[size_t(j * o_stride + o)] = w[o * g.C * kk + j];
  correlate_batch(k, B, x, g.C, g.H, g.W, g.pad_h, g.pad_w, wp, o_stride, ob, bias, false, y, g.O, g.OH, g.OW, g.KH,
                  g.KW);
}

void direct_input_grad(const DirectKernels& k, const DirectGeom& g, int64_t B, const float* dy, const float* w,
                       float* dx) {
  // dx[c, h, w] = sum over o, kh, kw of dy[o, h + pad_h - kh, w + pad_w - kw] * w[o, c, kh, kw]:
  // dy bordered by K - 1 - pad, correlated with wt[o][KH-1-kh][KW-1-kw][c] = w[o][c][kh][kw].
  const int ob = k.forward_block(g.C, g.W);
  const int64_t c_stride = round_up(g.C, ob), kk = int64_t(g.KH) * g.KW;
  std::vector<float> wt(size_t(g.O * kk * c_stride), 0.f);
  for (int64_t o = 0; o < g.O; ++o)
    for (int64_t c = 0; c < g.C; ++c)
      for (int64_t j = 0; j < kk; ++j) wt[size_t((o * kk + (kk - 1 - j)) * c_stride + c)] = w[(o * g.C + c) * kk + j];
  correlate_batch(k, B, dy, g.O, g.OH, g.OW, g.KH - 1 - g.pad_h, g.KW - 1 - g.pad_w, wt, c_stride, ob, nullptr, true,
                  dx, g.C, g.H, g.W, g.KH, g.KW);
}

void direct_weight_grad(const DirectKernels& k, const DirectGeom& g, int64_t B, const float* x, const float* dy,
                        float* dw) {
  const PaddedPlane pp = padded_plane(g.H, g.W, g.OW, g.KW, g.pad_h, g.pad_w, k.lanes);
  const int64_t plane = g.C * pp.Hp * pp.Wp, dw_size = g.O * g.C * g.KH * g.KW;
  // Images per group: their padded planes within ~512 KiB, so a group stays in L2 while every
  // (c, kh, channel block) pass runs over it.
  const int64_t group = std::clamp<int64_t>((int64_t(128) << 10) / std::max<int64_t>(1, plane), 1, 32);
  std::vector<Tensor> parts(static_cast<size_t>(num_threads()));
  const int n_parts = parallel_parts(B, [&](int part, int64_t b0, int64_t b1) {
    Tensor scratch = Tensor::empty({std::min(group, b1 - b0) * plane});
    parts[size_t(part)] = Tensor::zeros({dw_size});
    DwTask t{scratch.data(), pp.Hp, pp.Wp, nullptr, 0, parts[size_t(part)].data(), g.C, g.O, g.OH, g.OW, g.KH, g.KW};
    for (int64_t i0 = b0; i0 < b1; i0 += group) {
      t.n = std::min(group, b1 - i0);
      for (int64_t i = 0; i < t.n; ++i)
        pad_into(x + (i0 + i) * g.C * g.H * g.W, g.C, g.H, g.W, g.pad_h, g.pad_w, pp, scratch.data() + i * plane);
      t.dy = dy + i0 * g.O * g.OH * g.OW;
      k.weight_grad(t);
    }
  });
  for (int part = 0; part < n_parts; ++part) {
    const float* s = parts[size_t(part)].data();
    for (int64_t i = 0; i < dw_size; ++i) dw[i] += s[i];
  }
}

}  // namespace crayon::conv_detail
