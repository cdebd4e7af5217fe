#include "core/ops_conv.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>

#include "core/conv_direct.h"
#include "core/conv_winograd.h"
#include "core/lane_sum.h"
#include "core/pool_kernels.h"
#include "core/sgemm.h"
#include "core/check.h"
#include "core/parallel.h"

namespace crayon {

int64_t window_out_size(int64_t in, int kernel, int stride, int pad, const char* what) {
  if (kernel < 1 || stride < 1 || pad < 0)
    throw std::invalid_argument(str(what, ": kernel ", kernel, ", stride ", stride, ", padding ", pad,
                                    " (expected kernel >= 1, stride >= 1, padding >= 0)"));
  const int64_t span = in + 2 * int64_t(pad) - kernel;
  if (span < 0)
    throw std::invalid_argument(str(what, ": kernel ", kernel, " larger than input ", in, " + 2*padding ", pad));
  return span / stride + 1;
}

// The output columns ow whose input column iw = ow*stride - pad + k lies inside [0, W):
// [lo, hi). Computing the range once per row keeps branches out of the inner loops.
static inline void valid_range(int64_t OW, int64_t W, int stride, int pad, int k, int64_t& lo, int64_t& hi) {
  const int64_t first = pad - k;  // iw >= 0  <=>  ow*stride >= pad - k
  lo = first <= 0 ? 0 : std::min<int64_t>(OW, (first + stride - 1) / stride);
  const int64_t last = W - 1 + pad - k;  // iw <= W-1
  hi = last < 0 ? 0 : std::min<int64_t>(OW, last / stride + 1);
  if (hi < lo) hi = lo;
}

// cols row r = (c, kh, kw), column = (oh, ow); ld_cols is the row stride, so the columns
// of several images can sit side by side in one matrix.
void im2col(const float* x, int64_t C, int64_t H, int64_t W, int KH, int KW, const Conv2dParams& p,
            int64_t OH, int64_t OW, float* cols, int64_t ld_cols) {
  for (int64_t c = 0; c < C; ++c)
    for (int kh = 0; kh < KH; ++kh)
      for (int kw = 0; kw < KW; ++kw) {
        float* row = cols + ((c * KH + kh) * KW + kw) * ld_cols;
        int64_t lo, hi;
        valid_range(OW, W, p.stride_w, p.pad_w, kw, lo, hi);
        for (int64_t oh = 0; oh < OH; ++oh) {
          const int64_t ih = oh * p.stride_h - p.pad_h + kh;
          float* out = row + oh * OW;
          if (ih < 0 || ih >= H) {
            std::fill_n(out, OW, 0.f);
            continue;
          }
          const float* in = x + (c * H + ih) * W;
          const int64_t off = kw - p.pad_w;  // iw = ow * stride + off
          std::fill_n(out, lo, 0.f);
          if (p.stride_w == 1) {
            std::copy(in + lo + off, in + hi + off, out + lo);
          } else {
            for (int64_t ow = lo; ow < hi; ++ow) out[ow] = in[ow * p.stride_w + off];
          }
          std::fill(out + hi, out + OW, 0.f);
        }
      }
}

void col2im_add(const float* cols, int64_t C, int64_t H, int64_t W, int KH, int KW, const Conv2dParams& p,
                int64_t OH, int64_t OW, float* x, int64_t ld_cols) {
  for (int64_t c = 0; c < C; ++c)
    for (int kh = 0; kh < KH; ++kh)
      for (int kw = 0; kw < KW; ++kw) {
        const float* row = cols + ((c * KH + kh) * KW + kw) * ld_cols;
        int64_t lo, hi;
        valid_range(OW, W, p.stride_w, p.pad_w, kw, lo, hi);
        for (int64_t oh = 0; oh < OH; ++oh) {
          const int64_t ih = oh * p.stride_h - p.pad_h + kh;
          if (ih < 0 || ih >= H) continue;
          float* xin = x + (c * H + ih) * W;
          const int64_t off = kw - p.pad_w;
          const float* in = row + oh * OW;
          for (int64_t ow = lo; ow < hi; ++ow) xin[ow * p.stride_w + off] += in[ow];
        }
      }
}

namespace {
struct ConvGeom {
  int64_t B, C, H, W, O, OH, OW;
  int KH, KW;
  int64_t ckk() const { return C * KH * KW; }
  int64_t hw() const { return OH * OW; }
};

// Images per GEMM. The batch is cut into fixed chunks that the threads share out: at most
// ~1M floats (4 MiB) of columns per chunk, and at least four chunks per thread when the
// batch allows, so the parts stay balanced. The cut depends only on the geometry and the
// thread count at forward time; the backward pass reuses it, so saved columns line up.
int64_t chunk_images(const ConvGeom& g, int threads) {
  const int64_t per = std::max<int64_t>(1, g.ckk() * g.hw());
  const int64_t by_size = (int64_t(1) << 20) / per;
  const int64_t by_balance = (g.B + 4 * threads - 1) / (4 * threads);
  return std::clamp<int64_t>(std::min(by_size, by_balance), 1, std::max<int64_t>(1, g.B));
}

// Forward columns are kept for the weight gradient when they take at most this much.
constexpr int64_t kSaveColumnsBytes = int64_t(64) << 20;

std::atomic<ConvAlgo> g_conv_algo{ConvAlgo::automatic};

// What conv2d runs: the algorithm, and for direct the direct kernels. Automatic: Winograd wherever it applies with at least 16 channels
// in and out (fewer leave its 16 products short); else the direct kernels when the output rows
// fill at least 3/4 of the vector lanes (they vectorize along them), or when the GEMM would be
// short (C*KH*KW <= 256, where packing and im2col cost more than the product); else im2col +
// GEMM. bench_ops measures every algorithm on every preset layer.
struct ConvPlan {
  ConvAlgo algo;
  const conv_detail::DirectKernels* k;
  conv_detail::DirectGeom dg;
};

ConvPlan plan_for(const ConvGeom& g, const Conv2dParams& p) {
  const conv_detail::DirectGeom dg{g.C, g.H, g.W, g.O, g.OH, g.OW, g.KH, g.KW, p.pad_h, p.pad_w};
  const ConvAlgo want = g_conv_algo.load();
  const conv_detail::DirectKernels* k = conv_detail::direct_kernels(float_isa());
  if (want == ConvAlgo::gemm || k == nullptr || !conv_detail::direct_applies(g.KH, g.KW, p))
    return {ConvAlgo::gemm, nullptr, dg};
  const bool winograd = conv_detail::winograd_applies(dg, float_isa());
  if (want == ConvAlgo::winograd) return {winograd ? ConvAlgo::winograd : ConvAlgo::direct, k, dg};
  if (want == ConvAlgo::direct) return {ConvAlgo::direct, k, dg};
  if (winograd && g.C >= 16 && g.O >= 16) return {ConvAlgo::winograd, k, dg};
  const int64_t lanes_used = ((g.OW + k->lanes - 1) / k->lanes) * k->lanes;
  if (4 * g.OW >= 3 * lanes_used || g.ckk() <= 256) return {ConvAlgo::direct, k, dg};
  return {ConvAlgo::gemm, nullptr, dg};
}

// db[o] += sum of dy over the batch and the plane (each plane by lane_sum, the planes in double).
void add_bias_grad(const float* pdy, int64_t B, int64_t O, int64_t hw, float* db) {
  parallel_for(O, [&](int64_t o0, int64_t o1) {
    for (int64_t o = o0; o < o1; ++o) {
      double s = 0;
      for (int64_t b = 0; b < B; ++b) {
        const float* d = pdy + (b * O + o) * hw;
        s += lane_sum(hw, [d](int64_t j) { return d[j]; });
      }
      db[o] += float(s);
    }
  });
}
}  // namespace

void set_conv_algo(ConvAlgo algo) { g_conv_algo.store(algo); }
ConvAlgo conv_algo() { return g_conv_algo.load(); }
const char* conv_algo_name(ConvAlgo algo) {
  switch (algo) {
    case ConvAlgo::automatic: return "automatic";
    case ConvAlgo::gemm: return "gemm";
    case ConvAlgo::direct: return "direct";
    case ConvAlgo::winograd: return "winograd";
  }
  return "?";
}

ConvAlgo conv2d_algo_for(const Shape& x, const Shape& w, const Conv2dParams& p) {
  if (x.size() != 4 || w.size() != 4 || x[1] != w[1])
    throw std::invalid_argument(str("conv2d_algo_for: expected input (B, C, H, W) and weight (O, C, KH, KW), got ",
                                    shape_str(x), " and ", shape_str(w)));
  ConvGeom g{x[0], x[1], x[2], x[3], w[0], 0, 0, int(w[2]), int(w[3])};
  g.OH = window_out_size(g.H, g.KH, p.stride_h, p.pad_h, "conv2d_algo_for");
  g.OW = window_out_size(g.W, g.KW, p.stride_w, p.pad_w, "conv2d_algo_for");
  return plan_for(g, p).algo;
}

Variable conv2d(const Variable& x, const Variable& w, const Variable& bias, const Conv2dParams& p) {
  if (x.ndim() != 4 || w.ndim() != 4)
    throw std::invalid_argument(str("conv2d: expected input (B, C, H, W) and weight (O, C, KH, KW), got ",
                                    shape_str(x.shape()), " and ", shape_str(w.shape())));
  if (x.size(1) != w.size(1))
    throw std::invalid_argument(str("conv2d: input ", shape_str(x.shape()), " has ", x.size(1),
                                    " channels but weight ", shape_str(w.shape()), " expects ", w.size(1)));
  if (bias.defined() && bias.shape() != Shape{w.size(0)})
    throw std::invalid_argument(str("conv2d: expected bias of shape ", shape_str({w.size(0)}), ", got ",
                                    shape_str(bias.shape())));
  ConvGeom g{x.size(0), x.size(1), x.size(2), x.size(3), w.size(0), 0, 0, int(w.size(2)), int(w.size(3))};
  const std::string where = str("conv2d of input ", shape_str(x.shape()), " with weight ", shape_str(w.shape()));
  g.OH = window_out_size(g.H, g.KH, p.stride_h, p.pad_h, (where + ", height").c_str());
  g.OW = window_out_size(g.W, g.KW, p.stride_w, p.pad_w, (where + ", width").c_str());

  if (const ConvPlan plan = plan_for(g, p); plan.algo != ConvAlgo::gemm) {
    const bool winograd = plan.algo == ConvAlgo::winograd;
    Tensor y = Tensor::empty({g.B, g.O, g.OH, g.OW});
    const float* pb = bias.defined() ? bias.value().data() : nullptr;
    if (winograd)
      conv_detail::winograd_forward(plan.dg, g.B, x.value().data(), w.value().data(), pb, y.data());
    else
      conv_detail::direct_forward(*plan.k, plan.dg, g.B, x.value().data(), w.value().data(), pb, y.data());
    return make_result(std::move(y), {x, w, bias}, [plan, winograd, B = g.B](const Tensor& dy, std::vector<Variable>& in) {
      Variable &x = in[0], &w = in[1], &bias = in[2];
      const conv_detail::DirectGeom& dg = plan.dg;
      float beta = 0.f;  // a new gradient buffer is zero-filled, so each pass adds into it
      if (bias.defined() && bias.requires_grad())
        add_bias_grad(dy.data(), B, dg.O, dg.OH * dg.OW, bias.grad_accumulator(&beta).data());
      if (x.requires_grad()) {
        float* dx = x.grad_accumulator(&beta).data();
        if (winograd)
          conv_detail::winograd_input_grad(dg, B, dy.data(), w.value().data(), dx);
        else
          conv_detail::direct_input_grad(*plan.k, dg, B, dy.data(), w.value().data(), dx);
      }
      if (w.requires_grad()) {
        float* dw = w.grad_accumulator(&beta).data();
        if (winograd)
          conv_detail::winograd_weight_grad(dg, B, x.value().data(), dy.data(), dw);
        else
          conv_detail::direct_weight_grad(*plan.k, dg, B, x.value().data(), dy.data(), dw);
      }
    }, "conv2d");
  }

  // The threads share out fixed chunks of images; each runs im2col and its own
  // single-threaded GEMM per chunk (for LeNet-sized layers 2-3x faster than one GEMM split
  // across threads by OpenBLAS). When a weight gradient will be needed and the columns are
  // small enough, they are kept for the backward pass instead of being built again.
  Tensor y = Tensor::empty({g.B, g.O, g.OH, g.OW});
  const float* px = x.value().data();
  const float* pw = w.value().data();
  const float* pb = bias.defined() ? bias.value().data() : nullptr;
  float* py = y.data();
  const int64_t hw = g.hw(), ckk = g.ckk(), nb = chunk_images(g, num_threads());
  const int64_t chunks = (g.B + nb - 1) / nb;
  Tensor saved;
  if (grad_enabled() && w.requires_grad() && g.B * ckk * hw * int64_t(sizeof(float)) <= kSaveColumnsBytes)
    saved = Tensor::empty({g.B * ckk * hw});
  {
    SingleThreadedBlas single;
    parallel_parts(chunks, [&](int, int64_t c0, int64_t c1) {
      Tensor scratch = saved.defined() ? Tensor() : Tensor::empty({ckk * nb * hw});
      Tensor tmp = Tensor::empty({g.O, nb * hw});
      for (int64_t c = c0; c < c1; ++c) {
        const int64_t b0 = c * nb, n = std::min(nb, g.B - b0), ld = n * hw;
        // Chunk c's columns: (ckk, n*hw), in the saved buffer at b0*ckk*hw if kept.
        float* cols = saved.defined() ? saved.data() + b0 * ckk * hw : scratch.data();
        for (int64_t i = 0; i < n; ++i)
          im2col(px + (b0 + i) * g.C * g.H * g.W, g.C, g.H, g.W, g.KH, g.KW, p, g.OH, g.OW, cols + i * hw, ld);
        // tmp(O, n*hw) = W(O, ckk) * cols(ckk, n*hw), then scatter to (n, O, hw) + bias.
        sgemm(false, false, int(g.O), int(ld), int(ckk), 1.f, pw, int(ckk), cols, int(ld), 0.f, tmp.data(), int(ld));
        for (int64_t i = 0; i < n; ++i)
          for (int64_t o = 0; o < g.O; ++o) {
            const float* src = tmp.data() + o * ld + i * hw;
            float* dst = py + ((b0 + i) * g.O + o) * hw;
            const float bv = pb ? pb[o] : 0.f;
            for (int64_t j = 0; j < hw; ++j) dst[j] = src[j] + bv;
          }
      }
    });
  }

  return make_result(std::move(y), {x, w, bias}, [g, p, nb, chunks, saved](const Tensor& dy, std::vector<Variable>& in) {
    Variable &x = in[0], &w = in[1], &bias = in[2];
    const int64_t hw = g.hw(), ckk = g.ckk();
    const float* pdy = dy.data();
    float beta = 0.f;
    if (bias.defined() && bias.requires_grad())
      add_bias_grad(pdy, g.B, g.O, hw, bias.grad_accumulator(&beta).data());  // a new buffer is zero-filled
    const bool need_dw = w.requires_grad(), need_dx = x.requires_grad();
    if (!need_dw && !need_dx) return;
    // Gradient buffers are taken here, on one thread; new ones are zero-filled, so col2im
    // and the per-part dW sums can add into them.
    float* dx = need_dx ? x.grad_accumulator(&beta).data() : nullptr;
    const float* px = x.value().data();
    const float* pw = w.value().data();
    // Each part sums its chunks' dW privately; the parts are added in order afterwards, so
    // a given thread count always gives the same bits.
    std::vector<Tensor> dw_parts(static_cast<size_t>(num_threads()));
    int parts;
    {
      SingleThreadedBlas single;
      parts = parallel_parts(chunks, [&](int part, int64_t c0, int64_t c1) {
        // Scratch holds the rebuilt columns (when not saved) and then dcols; saved columns
        // are only read, so a retained graph can run backward again.
        Tensor scratch = Tensor::empty({ckk * nb * hw});
        Tensor dyc = Tensor::empty({g.O, nb * hw});
        float* dwp = nullptr;
        if (need_dw) {
          dw_parts[size_t(part)] = Tensor::empty({g.O, ckk});
          dwp = dw_parts[size_t(part)].data();
        }
        float dw_beta = 0.f;
        for (int64_t c = c0; c < c1; ++c) {
          const int64_t b0 = c * nb, n = std::min(nb, g.B - b0), ld = n * hw;
          const float* cols = saved.defined() ? saved.data() + b0 * ckk * hw : scratch.data();
          // Gather dy of these images as (O, n*hw), the layout the forward GEMM produced.
          for (int64_t i = 0; i < n; ++i)
            for (int64_t o = 0; o < g.O; ++o)
              std::memcpy(dyc.data() + o * ld + i * hw, pdy + ((b0 + i) * g.O + o) * hw, size_t(hw) * sizeof(float));
          if (need_dw) {
            if (!saved.defined())
              for (int64_t i = 0; i < n; ++i)
                im2col(px + (b0 + i) * g.C * g.H * g.W, g.C, g.H, g.W, g.KH, g.KW, p, g.OH, g.OW,
                       scratch.data() + i * hw, ld);
            // dW_part(O, ckk) += dy(O, n*hw) * cols(ckk, n*hw)^T
            sgemm(false, true, int(g.O), int(ckk), int(ld), 1.f, dyc.data(), int(ld), cols, int(ld), dw_beta, dwp,
                  int(ckk));
            dw_beta = 1.f;
          }
          if (need_dx) {
            // dcols(ckk, n*hw) = W(O, ckk)^T * dy(O, n*hw), folded back onto the input.
            float* dcols = scratch.data();
            sgemm(true, false, int(ckk), int(ld), int(g.O), 1.f, pw, int(ckk), dyc.data(), int(ld), 0.f, dcols, int(ld));
            for (int64_t i = 0; i < n; ++i)
              col2im_add(dcols + i * hw, g.C, g.H, g.W, g.KH, g.KW, p, g.OH, g.OW, dx + (b0 + i) * g.C * g.H * g.W, ld);
          }
        }
      });
    }
    if (need_dw) {
      float* dw = w.grad_accumulator(&beta).data();
      for (int part = 0; part < parts; ++part) {
        const float* s = dw_parts[size_t(part)].data();
        for (int64_t k = 0; k < g.O * ckk; ++k) dw[k] += s[k];
      }
    }
  }, "conv2d");
}

// ---------------------------------------------------------------- pooling

namespace {
struct PoolGeom {
  int64_t B, C, H, W, OH, OW;
};
PoolGeom pool_geom(const Variable& x, const Pool2dParams& p, const char* what) {
  if (x.ndim() != 4)
    throw std::invalid_argument(str(what, ": expected input (B, C, H, W), got ", shape_str(x.shape())));
  if (p.pad_h * 2 > p.kernel_h || p.pad_w * 2 > p.kernel_w)
    throw std::invalid_argument(str(what, ": padding (", p.pad_h, ", ", p.pad_w, ") must be at most half the kernel (",
                                    p.kernel_h, ", ", p.kernel_w, ")"));
  PoolGeom g{x.size(0), x.size(1), x.size(2), x.size(3), 0, 0};
  const std::string where = str(what, " of input ", shape_str(x.shape()));
  g.OH = window_out_size(g.H, p.kernel_h, p.stride_h, p.pad_h, (where + ", height").c_str());
  g.OW = window_out_size(g.W, p.kernel_w, p.stride_w, p.pad_w, (where + ", width").c_str());
  return g;
}
}  // namespace

namespace {
// 2x2 windows at stride 2 without padding (every CNN here): each input cell in at most one
// window, so both passes have a fast path.
bool is_two_by_two(const Pool2dParams& p) {
  return p.kernel_h == 2 && p.kernel_w == 2 && p.stride_h == 2 && p.stride_w == 2 && p.pad_h == 0 && p.pad_w == 0;
}
}  // namespace

namespace pool_detail {
void max_pool_2x2_row(const float* r, int64_t W, int64_t OW, int32_t base, float* y, int32_t* arg) {
  const float* r1 = r + W;
  const int32_t w = int32_t(W);
  for (int64_t j = 0; j < OW; ++j) {
    const int32_t i = int32_t(2 * j);
    float best = r[i];
    int32_t at = base + i;
    if (r[i + 1] > best) best = r[i + 1], at = base + i + 1;
    if (r1[i] > best) best = r1[i], at = base + w + i;
    if (r1[i + 1] > best) best = r1[i + 1], at = base + w + i + 1;
    y[j] = best;
    arg[j] = at;
  }
}

void max_pool_2x2_row_backward(const float* dy, const int32_t* arg, int64_t W, int64_t OW, int32_t base, float* r) {
  float* r1 = r + W;
  const int32_t w = int32_t(W);
  for (int64_t j = 0; j < OW; ++j) {
    const int32_t i = int32_t(2 * j), at = arg[j];
    const float v = dy[j];
    r[i] = at == base + i ? v : 0.f;
    r[i + 1] = at == base + i + 1 ? v : 0.f;
    r1[i] = at == base + w + i ? v : 0.f;
    r1[i + 1] = at == base + w + i + 1 ? v : 0.f;
  }
}
}  // namespace pool_detail

namespace {
using PoolRow = void (*)(const float*, int64_t, int64_t, int32_t, float*, int32_t*);
using PoolRowBackward = void (*)(const float*, const int32_t*, int64_t, int64_t, int32_t, float*);
PoolRow pool_row() {
#ifdef CRAYON_SGEMM_X86
  if (float_isa() == FloatIsa::avx512) return &pool_detail::max_pool_2x2_row_avx512;
#endif
  return &pool_detail::max_pool_2x2_row;
}
PoolRowBackward pool_row_backward() {
#ifdef CRAYON_SGEMM_X86
  if (float_isa() == FloatIsa::avx512) return &pool_detail::max_pool_2x2_row_backward_avx512;
#endif
  return &pool_detail::max_pool_2x2_row_backward;
}
}  // namespace

Variable max_pool2d(const Variable& x, const Pool2dParams& p) {
  const PoolGeom g = pool_geom(x, p, "max_pool2d");
  Tensor y = Tensor::empty({g.B, g.C, g.OH, g.OW});
  Tensor arg = Tensor::empty({g.B, g.C, g.OH, g.OW}, DType::i32);  // flat index in the plane
  const float* px = x.value().data();
  float* py = y.data();
  int32_t* pa = arg.data_as<int32_t>();
  const bool two_by_two = is_two_by_two(p);
  const PoolRow row = pool_row();
  parallel_for(g.B * g.C, [&](int64_t bc0, int64_t bc1) {
    for (int64_t bc = bc0; bc < bc1; ++bc) {
      const float* plane = px + bc * g.H * g.W;
      if (two_by_two) {
        for (int64_t oh = 0; oh < g.OH; ++oh)
          row(plane + 2 * oh * g.W, g.W, g.OW, int32_t(2 * oh * g.W), py + (bc * g.OH + oh) * g.OW,
                           pa + (bc * g.OH + oh) * g.OW);
        continue;
      }
      for (int64_t oh = 0; oh < g.OH; ++oh)
        for (int64_t ow = 0; ow < g.OW; ++ow) {
          const PoolWindow win = pool_window(p, g.H, g.W, oh, ow);
          int64_t bi = win.h0 * g.W + win.w0;
          float best = plane[bi];
          for (int64_t ih = win.h0; ih < win.h1; ++ih)
            for (int64_t iw = win.w0; iw < win.w1; ++iw) {
              const float v = plane[ih * g.W + iw];
              if (v > best) {
                best = v;
                bi = ih * g.W + iw;
              }
            }
          const int64_t o = (bc * g.OH + oh) * g.OW + ow;
          py[o] = best;
          pa[o] = int32_t(bi);
        }
    }
  });
  return make_result(std::move(y), {x}, [g, arg, two_by_two](const Tensor& dy, std::vector<Variable>& in) {
    // 2x2: every cell of dx written once (the gradient in its window's winner, zeros
    // elsewhere, an odd last row or column zero), with no zero-fill pass before.
    Tensor dx = two_by_two ? Tensor::empty(in[0].shape()) : Tensor::zeros(in[0].shape());
    const PoolRowBackward row = pool_row_backward();
    const float* pd = dy.data();
    const int32_t* pa = arg.data_as<int32_t>();
    float* pg = dx.data();
    const int64_t per = g.OH * g.OW;
    parallel_for(g.B * g.C, [&](int64_t bc0, int64_t bc1) {
      for (int64_t bc = bc0; bc < bc1; ++bc) {
        float* plane = pg + bc * g.H * g.W;
        const float* d = pd + bc * per;
        const int32_t* a = pa + bc * per;
        if (!two_by_two) {
          for (int64_t j = 0; j < per; ++j) plane[a[j]] += d[j];
          continue;
        }
        for (int64_t oh = 0; oh < g.OH; ++oh) {
          float* r0 = plane + 2 * oh * g.W;
          float* r1 = r0 + g.W;
          row(d + oh * g.OW, a + oh * g.OW, g.W, g.OW, int32_t(2 * oh * g.W), r0);
          if (g.W > 2 * g.OW) r0[g.W - 1] = r1[g.W - 1] = 0.f;
        }
        if (g.H > 2 * g.OH) std::fill_n(plane + (g.H - 1) * g.W, g.W, 0.f);
      }
    });
    in[0].add_fresh_grad(std::move(dx));
  }, "max_pool2d");
}

Variable avg_pool2d(const Variable& x, const Pool2dParams& p) {
  const PoolGeom g = pool_geom(x, p, "avg_pool2d");
  const float inv = 1.f / float(p.kernel_h * p.kernel_w);
  Tensor y = Tensor::empty({g.B, g.C, g.OH, g.OW});
  const float* px = x.value().data();
  float* py = y.data();
  parallel_for(g.B * g.C, [&](int64_t bc0, int64_t bc1) {
    for (int64_t bc = bc0; bc < bc1; ++bc) {
      const float* plane = px + bc * g.H * g.W;
      for (int64_t oh = 0; oh < g.OH; ++oh)
        for (int64_t ow = 0; ow < g.OW; ++ow) {
          const PoolWindow win = pool_window(p, g.H, g.W, oh, ow);
          float s = 0.f;  // padding cells count in the divisor, as zeros
          for (int64_t ih = win.h0; ih < win.h1; ++ih)
            for (int64_t iw = win.w0; iw < win.w1; ++iw) s += plane[ih * g.W + iw];
          py[(bc * g.OH + oh) * g.OW + ow] = s * inv;
        }
    }
  });
  return make_result(std::move(y), {x}, [g, p, inv](const Tensor& dy, std::vector<Variable>& in) {
    Tensor dx = Tensor::zeros(in[0].shape());
    const float* pd = dy.data();
    float* pg = dx.data();
    parallel_for(g.B * g.C, [&](int64_t bc0, int64_t bc1) {
      for (int64_t bc = bc0; bc < bc1; ++bc) {
        float* plane = pg + bc * g.H * g.W;
        for (int64_t oh = 0; oh < g.OH; ++oh)
          for (int64_t ow = 0; ow < g.OW; ++ow) {
            const float d = pd[(bc * g.OH + oh) * g.OW + ow] * inv;
            const PoolWindow win = pool_window(p, g.H, g.W, oh, ow);
            for (int64_t ih = win.h0; ih < win.h1; ++ih)
              for (int64_t iw = win.w0; iw < win.w1; ++iw) plane[ih * g.W + iw] += d;
          }
      }
    });
    in[0].add_fresh_grad(std::move(dx));
  }, "avg_pool2d");
}

}  // namespace crayon
