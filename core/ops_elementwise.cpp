#include "core/ops_elementwise.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "core/check.h"
#include "core/parallel.h"

namespace crayon {

// ---------------------------------------------------------------- broadcasting machinery

Shape broadcast_shapes(const Shape& a, const Shape& b) {
  const size_t n = std::max(a.size(), b.size());
  Shape out(n);
  for (size_t i = 0; i < n; ++i) {
    const int64_t da = i < n - a.size() ? 1 : a[i - (n - a.size())];
    const int64_t db = i < n - b.size() ? 1 : b[i - (n - b.size())];
    if (da != db && da != 1 && db != 1)
      throw std::invalid_argument(str("cannot broadcast shapes ", shape_str(a), " and ", shape_str(b)));
    out[i] = da == 1 ? db : da;
  }
  return out;
}

namespace {

// Strides of `in` laid over `out` (right-aligned), 0 where `in` is broadcast.
std::vector<int64_t> broadcast_strides(const Shape& in, const Shape& out) {
  std::vector<int64_t> st(out.size(), 0);
  int64_t s = 1;
  for (size_t k = 0; k < in.size(); ++k) {
    const size_t i = in.size() - 1 - k, o = out.size() - 1 - k;
    st[o] = in[i] == 1 ? 0 : s;
    s *= in[i];
  }
  return st;
}

// Calls f(o, ia, ib) for every linear index o of `out`, with the matching linear indices
// into a and b. Adjacent dims where both operands advance alike are merged first, so the
// common cases (bias rows, per-channel scales) become two or three flat loops.
template <typename F>
void for_each_broadcast(const Shape& out, const Shape& a, const Shape& b, F f) {
  std::vector<int64_t> dims, sa, sb;
  {
    const auto sta = broadcast_strides(a, out), stb = broadcast_strides(b, out);
    for (size_t i = 0; i < out.size(); ++i) {
      if (out[i] == 1) continue;
      if (!dims.empty() && sa.back() == sta[i] * out[i] && sb.back() == stb[i] * out[i]) {
        dims.back() *= out[i];
        sa.back() = sta[i];
        sb.back() = stb[i];
      } else {
        dims.push_back(out[i]);
        sa.push_back(sta[i]);
        sb.push_back(stb[i]);
      }
    }
  }
  if (dims.empty()) {
    if (shape_numel(out) == 1) f(0, 0, 0);
    return;
  }
  const size_t nd = dims.size();
  const int64_t inner = dims[nd - 1], ia_step = sa[nd - 1], ib_step = sb[nd - 1];
  std::vector<int64_t> idx(nd, 0);
  int64_t o = 0, ia = 0, ib = 0;
  const int64_t total = shape_numel(out);
  while (o < total) {
    for (int64_t j = 0; j < inner; ++j) f(o + j, ia + j * ia_step, ib + j * ib_step);
    o += inner;
    // Advance the odometer over the outer dims.
    for (size_t d = nd - 1; d-- > 0;) {
      ia += sa[d];
      ib += sb[d];
      if (++idx[d] < dims[d]) break;
      ia -= sa[d] * dims[d];
      ib -= sb[d] * dims[d];
      idx[d] = 0;
    }
  }
}

// y = f(a, b) with broadcasting.
template <typename F>
Tensor broadcast_apply(const Tensor& a, const Tensor& b, F f) {
  const Shape out_shape = broadcast_shapes(a.shape(), b.shape());
  Tensor out = Tensor::empty(out_shape);
  const float* pa = a.data();
  const float* pb = b.data();
  float* po = out.data();
  if (a.shape() == b.shape()) {
    for (int64_t i = 0; i < out.numel(); ++i) po[i] = f(pa[i], pb[i]);
  } else {
    for_each_broadcast(out_shape, a.shape(), b.shape(),
                       [&](int64_t o, int64_t ia, int64_t ib) { po[o] = f(pa[ia], pb[ib]); });
  }
  return out;
}

}  // namespace

Tensor sum_to_shape(const Tensor& g, const Shape& shape) {
  if (g.shape() == shape) return g;
  const Shape full = broadcast_shapes(g.shape(), shape);
  if (full != g.shape())
    throw std::invalid_argument(str("sum_to_shape: ", shape_str(g.shape()), " does not broadcast from ",
                                    shape_str(shape)));
  Tensor out = Tensor::zeros(shape);
  const float* pg = g.data();
  float* po = out.data();
  for_each_broadcast(g.shape(), g.shape(), shape,
                     [&](int64_t o, int64_t, int64_t ib) { po[ib] += pg[o]; });
  return out;
}

// ---------------------------------------------------------------- binary ops

namespace {
// Accumulate sum_to_shape(h(out_index...)) into input i's gradient, where the full-size
// gradient is computed by g(o, ia, ib) over the broadcast output.
template <typename G>
void accumulate_broadcast_grad(Variable& in, const Tensor& dout, const Tensor& a, const Tensor& b, G g) {
  Tensor full = Tensor::empty(dout.shape());
  float* pf = full.data();
  for_each_broadcast(dout.shape(), a.shape(), b.shape(),
                     [&](int64_t o, int64_t ia, int64_t ib) { pf[o] = g(o, ia, ib); });
  in.add_grad(sum_to_shape(full, in.shape()));
}
}  // namespace

Variable add(const Variable& a, const Variable& b) {
  Tensor y = broadcast_apply(a.value(), b.value(), [](float x, float z) { return x + z; });
  return make_result(std::move(y), {a, b}, [](const Tensor& dy, std::vector<Variable>& in) {
    for (auto& v : in)
      if (v.requires_grad()) v.add_grad(sum_to_shape(dy, v.shape()));
  }, "add");
}

Variable sub(const Variable& a, const Variable& b) {
  Tensor y = broadcast_apply(a.value(), b.value(), [](float x, float z) { return x - z; });
  return make_result(std::move(y), {a, b}, [](const Tensor& dy, std::vector<Variable>& in) {
    if (in[0].requires_grad()) in[0].add_grad(sum_to_shape(dy, in[0].shape()));
    if (in[1].requires_grad()) {
      Tensor g = sum_to_shape(dy, in[1].shape()).clone();
      for (float& v : g.values()) v = -v;
      in[1].add_fresh_grad(std::move(g));
    }
  }, "sub");
}

Variable mul(const Variable& a, const Variable& b) {
  Tensor y = broadcast_apply(a.value(), b.value(), [](float x, float z) { return x * z; });
  return make_result(std::move(y), {a, b}, [](const Tensor& dy, std::vector<Variable>& in) {
    const Tensor &av = in[0].value(), &bv = in[1].value();
    const float *pa = av.data(), *pb = bv.data(), *pd = dy.data();
    // d(a*b)/da = b, d(a*b)/db = a
    if (in[0].requires_grad())
      accumulate_broadcast_grad(in[0], dy, av, bv, [&](int64_t o, int64_t, int64_t ib) { return pd[o] * pb[ib]; });
    if (in[1].requires_grad())
      accumulate_broadcast_grad(in[1], dy, av, bv, [&](int64_t o, int64_t ia, int64_t) { return pd[o] * pa[ia]; });
  }, "mul");
}

Variable div(const Variable& a, const Variable& b) {
  Tensor y = broadcast_apply(a.value(), b.value(), [](float x, float z) { return x / z; });
  return make_result(std::move(y), {a, b}, [](const Tensor& dy, std::vector<Variable>& in) {
    const Tensor &av = in[0].value(), &bv = in[1].value();
    const float *pa = av.data(), *pb = bv.data(), *pd = dy.data();
    // d(a/b)/da = 1/b, d(a/b)/db = -a/b^2
    if (in[0].requires_grad())
      accumulate_broadcast_grad(in[0], dy, av, bv, [&](int64_t o, int64_t, int64_t ib) { return pd[o] / pb[ib]; });
    if (in[1].requires_grad())
      accumulate_broadcast_grad(in[1], dy, av, bv, [&](int64_t o, int64_t ia, int64_t ib) {
        return -pd[o] * pa[ia] / (pb[ib] * pb[ib]);
      });
  }, "div");
}

// ---------------------------------------------------------------- unary ops

namespace {
// Elementwise loops split over the threads above this many elements per thread.
constexpr int64_t kElementwiseGrain = int64_t(1) << 15;

// y = f(x); dx += dy * df(x, y). The derivative sits right below the forward.
template <typename F, typename DF>
Variable unary(const Variable& x, const char* name, F f, DF df) {
  const Tensor& xv = x.value();
  Tensor y = Tensor::empty(xv.shape());
  const float* px = xv.data();
  float* py = y.data();
  parallel_for(xv.numel(), [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) py[i] = f(px[i]);
  }, kElementwiseGrain);
  Tensor yv = y;  // shared handle, for derivatives written in terms of the output
  return make_result(std::move(y), {x}, [df, yv](const Tensor& dy, std::vector<Variable>& in) {
    float beta;
    Tensor& dx = in[0].grad_accumulator(&beta);
    const float *px = in[0].value().data(), *py = yv.data(), *pd = dy.data();
    float* pg = dx.data();
    parallel_for(dy.numel(), [&](int64_t b, int64_t e) {
      if (beta == 0.f)  // the first gradient to arrive: nothing to add to
        for (int64_t i = b; i < e; ++i) pg[i] = pd[i] * df(px[i], py[i]);
      else
        for (int64_t i = b; i < e; ++i) pg[i] += pd[i] * df(px[i], py[i]);
    }, kElementwiseGrain);
  }, name);
}
}  // namespace

Variable add(const Variable& a, float s) {
  return unary(a, "add_scalar", [s](float x) { return x + s; }, [](float, float) { return 1.f; });
}
Variable mul(const Variable& a, float s) {
  return unary(a, "mul_scalar", [s](float x) { return x * s; }, [s](float, float) { return s; });
}
Variable neg(const Variable& x) {
  return unary(x, "neg", [](float v) { return -v; }, [](float, float) { return -1.f; });
}
Variable exp(const Variable& x) {
  return unary(x, "exp", [](float v) { return std::exp(v); }, [](float, float y) { return y; });
}
Variable log(const Variable& x) {
  return unary(x, "log", [](float v) { return std::log(v); }, [](float v, float) { return 1.f / v; });
}
Variable sqrt(const Variable& x) {
  return unary(x, "sqrt", [](float v) { return std::sqrt(v); }, [](float, float y) { return 0.5f / y; });
}
Variable pow(const Variable& x, float p) {
  return unary(x, "pow", [p](float v) { return std::pow(v, p); },
               [p](float v, float) { return p * std::pow(v, p - 1.f); });
}
Variable abs(const Variable& x) {
  return unary(x, "abs", [](float v) { return std::fabs(v); },
               [](float v, float) { return v > 0.f ? 1.f : (v < 0.f ? -1.f : 0.f); });
}
Variable clamp(const Variable& x, float lo, float hi) {
  if (!(lo <= hi)) throw std::invalid_argument(str("clamp: lo ", lo, " > hi ", hi));
  return unary(x, "clamp", [lo, hi](float v) { return std::min(std::max(v, lo), hi); },
               [lo, hi](float v, float) { return (v >= lo && v <= hi) ? 1.f : 0.f; });
}
Variable relu(const Variable& x) {
  return unary(x, "relu", [](float v) { return v > 0.f ? v : 0.f; },
               [](float v, float) { return float(v > 0.f); });
}
Variable relu6(const Variable& x) {
  return unary(x, "relu6", [](float v) { return std::min(std::max(v, 0.f), 6.f); },
               [](float v, float) { return float(v > 0.f) * float(v < 6.f); });
}
Variable sigmoid(const Variable& x) {
  // Written so that exp never overflows: for v < 0, e^v / (1 + e^v).
  return unary(x, "sigmoid",
               [](float v) {
                 if (v >= 0.f) return 1.f / (1.f + std::exp(-v));
                 const float e = std::exp(v);
                 return e / (1.f + e);
               },
               [](float, float y) { return y * (1.f - y); });
}
Variable tanh(const Variable& x) {
  return unary(x, "tanh", [](float v) { return std::tanh(v); }, [](float, float y) { return 1.f - y * y; });
}

Variable dropout(const Variable& x, float p, bool training, Rng& rng) {
  if (!(p >= 0.f && p < 1.f)) throw std::invalid_argument(str("dropout: p must be in [0, 1), got ", p));
  if (!training || p == 0.f) return x;
  const float scale = 1.f / (1.f - p);
  Tensor mask = Tensor::empty(x.shape());
  for (float& m : mask.values()) m = rng.uniform() < p ? 0.f : scale;
  return mul(x, Variable(mask));
}

}  // namespace crayon
