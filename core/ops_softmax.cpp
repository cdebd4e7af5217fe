#include "core/ops_softmax.h"

#include <cmath>
#include <stdexcept>

#include "core/check.h"
#include "core/ops_reduce.h"

namespace crayon {

namespace {
// For each of the outer*inner rows of length n (stride `inner`), write log-softmax.
void log_softmax_rows(const float* x, float* out, const AxisSplit& sp) {
  for (int64_t o = 0; o < sp.outer; ++o)
    for (int64_t i = 0; i < sp.inner; ++i) {
      const float* row = x + o * sp.n * sp.inner + i;
      float* orow = out + o * sp.n * sp.inner + i;
      float m = row[0];
      for (int64_t k = 1; k < sp.n; ++k) m = std::max(m, row[k * sp.inner]);
      double s = 0;
      for (int64_t k = 0; k < sp.n; ++k) s += std::exp(double(row[k * sp.inner] - m));
      // (x - m) - log(s), not x - (m + log(s)): rounding m + log(s) to a float of m's
      // magnitude would cost log(s) its digits (4e-4 relative error at logits of 1e4).
      const float log_s = float(std::log(s));
      for (int64_t k = 0; k < sp.n; ++k) orow[k * sp.inner] = (row[k * sp.inner] - m) - log_s;
    }
}
}  // namespace

Variable log_softmax(const Variable& x, int axis) {
  const AxisSplit sp = split_at_axis(x.shape(), axis, "log_softmax");
  Tensor y = Tensor::empty(x.shape());
  log_softmax_rows(x.value().data(), y.data(), sp);
  Tensor yv = y;
  // dx = dy - softmax * sum_k dy_k
  return make_result(std::move(y), {x}, [sp, yv](const Tensor& dy, std::vector<Variable>& in) {
    Tensor g = Tensor::empty(dy.shape());
    const float *pd = dy.data(), *py = yv.data();
    float* pg = g.data();
    for (int64_t o = 0; o < sp.outer; ++o)
      for (int64_t i = 0; i < sp.inner; ++i) {
        const int64_t base = o * sp.n * sp.inner + i;
        double s = 0;
        for (int64_t k = 0; k < sp.n; ++k) s += pd[base + k * sp.inner];
        for (int64_t k = 0; k < sp.n; ++k) {
          const int64_t j = base + k * sp.inner;
          pg[j] = pd[j] - std::exp(py[j]) * float(s);
        }
      }
    in[0].add_fresh_grad(std::move(g));
  }, "log_softmax");
}

Variable softmax(const Variable& x, int axis) {
  const AxisSplit sp = split_at_axis(x.shape(), axis, "softmax");
  Tensor y = Tensor::empty(x.shape());
  log_softmax_rows(x.value().data(), y.data(), sp);
  for (float& v : y.values()) v = std::exp(v);
  Tensor yv = y;
  // dx = y * (dy - sum_k dy_k y_k)
  return make_result(std::move(y), {x}, [sp, yv](const Tensor& dy, std::vector<Variable>& in) {
    Tensor g = Tensor::empty(dy.shape());
    const float *pd = dy.data(), *py = yv.data();
    float* pg = g.data();
    for (int64_t o = 0; o < sp.outer; ++o)
      for (int64_t i = 0; i < sp.inner; ++i) {
        const int64_t base = o * sp.n * sp.inner + i;
        double s = 0;
        for (int64_t k = 0; k < sp.n; ++k) s += double(pd[base + k * sp.inner]) * py[base + k * sp.inner];
        for (int64_t k = 0; k < sp.n; ++k) {
          const int64_t j = base + k * sp.inner;
          pg[j] = py[j] * (pd[j] - float(s));
        }
      }
    in[0].add_fresh_grad(std::move(g));
  }, "softmax");
}

Variable cross_entropy(const Variable& logits, const Tensor& labels) {
  if (logits.ndim() != 2)
    throw std::invalid_argument(str("cross_entropy: expected logits of shape (B, C), got ", shape_str(logits.shape())));
  const int64_t B = logits.size(0), C = logits.size(1);
  if (labels.dtype() != DType::i32 || labels.shape() != Shape{B})
    throw std::invalid_argument(str("cross_entropy: expected int32 labels of shape ", shape_str({B}), ", got ",
                                    dtype_name(labels.dtype()), " ", shape_str(labels.shape())));
  if (B == 0) throw std::invalid_argument("cross_entropy: empty batch");
  const int32_t* pl = labels.data_as<int32_t>();
  for (int64_t b = 0; b < B; ++b)
    if (pl[b] < 0 || pl[b] >= C)
      throw std::invalid_argument(str("cross_entropy: label ", pl[b], " at index ", b, " outside [0, ", C, ")"));

  Tensor logp = Tensor::empty(logits.shape());
  log_softmax_rows(logits.value().data(), logp.data(), AxisSplit{1, B, C, 1});
  double loss = 0;
  for (int64_t b = 0; b < B; ++b) loss -= logp.data()[b * C + pl[b]];
  Tensor y = Tensor::scalar(float(loss / double(B)));
  return make_result(std::move(y), {logits}, [logp, labels = labels.clone(), B, C](const Tensor& dy, std::vector<Variable>& in) {
    float beta;
    Tensor& dx = in[0].grad_accumulator(&beta);
    const float scale = dy.item() / float(B);
    const float* lp = logp.data();
    const int32_t* pl = labels.data_as<int32_t>();
    float* pg = dx.data();
    for (int64_t b = 0; b < B; ++b)
      for (int64_t c = 0; c < C; ++c) {
        const float g = (std::exp(lp[b * C + c]) - (c == pl[b] ? 1.f : 0.f)) * scale;
        pg[b * C + c] = beta * pg[b * C + c] + g;
      }
  }, "cross_entropy");
}

}  // namespace crayon
