#include "core/reference.h"

#include <stdexcept>
#include <vector>

#include "core/check.h"

namespace crayon::reference {

Tensor matmul(const Tensor& a, const Tensor& b, bool trans_a, bool trans_b) {
  const int64_t M = trans_a ? a.size(1) : a.size(0), K = trans_a ? a.size(0) : a.size(1);
  const int64_t N = trans_b ? b.size(0) : b.size(1);
  CRAYON_CHECK(K == (trans_b ? b.size(1) : b.size(0)), "reference::matmul: ", shape_str(a.shape()), " x ",
               shape_str(b.shape()));
  Tensor c = Tensor::empty({M, N});
  const float *pa = a.data(), *pb = b.data();
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) {
      double s = 0;
      for (int64_t k = 0; k < K; ++k) {
        const float av = trans_a ? pa[k * M + i] : pa[i * K + k];
        const float bv = trans_b ? pb[j * K + k] : pb[k * N + j];
        s += double(av) * bv;
      }
      c.data()[i * N + j] = float(s);
    }
  return c;
}

Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor& bias, const Conv2dParams& p) {
  const int64_t B = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  const int64_t O = w.size(0), KH = w.size(2), KW = w.size(3);
  CRAYON_CHECK(w.size(1) == C, "reference::conv2d channels");
  const int64_t OH = window_out_size(H, int(KH), p.stride_h, p.pad_h, "reference conv2d");
  const int64_t OW = window_out_size(W, int(KW), p.stride_w, p.pad_w, "reference conv2d");
  Tensor y = Tensor::empty({B, O, OH, OW});
  for (int64_t b = 0; b < B; ++b)
    for (int64_t o = 0; o < O; ++o)
      for (int64_t oh = 0; oh < OH; ++oh)
        for (int64_t ow = 0; ow < OW; ++ow) {
          double s = bias.defined() ? bias.data()[o] : 0.0;
          for (int64_t c = 0; c < C; ++c)
            for (int64_t kh = 0; kh < KH; ++kh)
              for (int64_t kw = 0; kw < KW; ++kw) {
                const int64_t ih = oh * p.stride_h - p.pad_h + kh, iw = ow * p.stride_w - p.pad_w + kw;
                if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
                s += double(x.data()[((b * C + c) * H + ih) * W + iw]) * w.data()[((o * C + c) * KH + kh) * KW + kw];
              }
          y.data()[((b * O + o) * OH + oh) * OW + ow] = float(s);
        }
  return y;
}

Conv2dGrads conv2d_backward(const Tensor& x, const Tensor& w, const Tensor& dy, const Conv2dParams& p) {
  const int64_t B = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  const int64_t O = w.size(0), KH = w.size(2), KW = w.size(3), OH = dy.size(2), OW = dy.size(3);
  CRAYON_CHECK(w.size(1) == C && dy.size(0) == B && dy.size(1) == O, "reference::conv2d_backward shapes");
  std::vector<double> dx(size_t(x.numel()), 0.0), dw(size_t(w.numel()), 0.0);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t o = 0; o < O; ++o)
      for (int64_t oh = 0; oh < OH; ++oh)
        for (int64_t ow = 0; ow < OW; ++ow) {
          const double g = dy.data()[((b * O + o) * OH + oh) * OW + ow];
          for (int64_t c = 0; c < C; ++c)
            for (int64_t kh = 0; kh < KH; ++kh)
              for (int64_t kw = 0; kw < KW; ++kw) {
                const int64_t ih = oh * p.stride_h - p.pad_h + kh, iw = ow * p.stride_w - p.pad_w + kw;
                if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
                const int64_t xi = ((b * C + c) * H + ih) * W + iw, wi = ((o * C + c) * KH + kh) * KW + kw;
                dx[size_t(xi)] += g * w.data()[wi];
                dw[size_t(wi)] += g * x.data()[xi];
              }
        }
  Conv2dGrads out{Tensor::empty(x.shape()), Tensor::empty(w.shape())};
  for (int64_t i = 0; i < x.numel(); ++i) out.dx.data()[i] = float(dx[size_t(i)]);
  for (int64_t i = 0; i < w.numel(); ++i) out.dw.data()[i] = float(dw[size_t(i)]);
  return out;
}

}  // namespace crayon::reference
