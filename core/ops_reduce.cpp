#include "core/ops_reduce.h"

#include <limits>
#include <stdexcept>

#include "core/check.h"
#include "core/ops_elementwise.h"

namespace crayon {

AxisSplit split_at_axis(const Shape& s, int axis, const char* op) {
  const int nd = int(s.size());
  const int a = axis < 0 ? axis + nd : axis;
  if (a < 0 || a >= nd)
    throw std::invalid_argument(str(op, ": axis ", axis, " out of range for shape ", shape_str(s)));
  AxisSplit r{a, 1, s[size_t(a)], 1};
  for (int i = 0; i < a; ++i) r.outer *= s[size_t(i)];
  for (int i = a + 1; i < nd; ++i) r.inner *= s[size_t(i)];
  return r;
}

namespace {
Shape reduced_shape(const Shape& s, int axis, bool keepdim) {
  Shape out = s;
  if (keepdim) out[size_t(axis)] = 1;
  else out.erase(out.begin() + axis);
  return out;
}

// Sum (scale = 1) or mean (scale = 1/n) over an axis; backward spreads dy * scale.
Variable sum_scaled(const Variable& x, int axis, bool keepdim, bool is_mean, const char* name) {
  const AxisSplit sp = split_at_axis(x.shape(), axis, name);
  const float scale = is_mean ? 1.f / float(sp.n) : 1.f;
  Tensor y = Tensor::zeros(reduced_shape(x.shape(), sp.axis, keepdim));
  const float* px = x.value().data();
  float* py = y.data();
  for (int64_t o = 0; o < sp.outer; ++o)
    for (int64_t k = 0; k < sp.n; ++k)
      for (int64_t i = 0; i < sp.inner; ++i) py[o * sp.inner + i] += px[(o * sp.n + k) * sp.inner + i];
  if (is_mean)
    for (float& v : y.values()) v *= scale;
  return make_result(std::move(y), {x}, [sp, scale](const Tensor& dy, std::vector<Variable>& in) {
    float beta;
    Tensor& dx = in[0].grad_accumulator(&beta);
    const float* pd = dy.data();
    float* pg = dx.data();
    for (int64_t o = 0; o < sp.outer; ++o)
      for (int64_t k = 0; k < sp.n; ++k)
        for (int64_t i = 0; i < sp.inner; ++i) {
          float& g = pg[(o * sp.n + k) * sp.inner + i];
          g = beta * g + scale * pd[o * sp.inner + i];
        }
  }, name);
}

Variable max_impl(const Variable& x, const AxisSplit& sp, Shape out_shape, const char* name) {
  if (sp.n == 0) throw std::invalid_argument(str(name, ": cannot take the max of an empty axis in ", shape_str(x.shape())));
  Tensor y = Tensor::empty(out_shape);
  Tensor arg = Tensor::empty(out_shape, DType::i32);  // winning k per output
  const float* px = x.value().data();
  float* py = y.data();
  int32_t* pa = arg.data_as<int32_t>();
  for (int64_t o = 0; o < sp.outer; ++o)
    for (int64_t i = 0; i < sp.inner; ++i) {
      float best = -std::numeric_limits<float>::infinity();
      int32_t bk = 0;
      for (int64_t k = 0; k < sp.n; ++k) {
        const float v = px[(o * sp.n + k) * sp.inner + i];
        if (k == 0 || v > best) { best = v; bk = int32_t(k); }
      }
      py[o * sp.inner + i] = best;
      pa[o * sp.inner + i] = bk;
    }
  return make_result(std::move(y), {x}, [sp, arg](const Tensor& dy, std::vector<Variable>& in) {
    Tensor g = Tensor::zeros(in[0].shape());
    const float* pd = dy.data();
    const int32_t* pa = arg.data_as<int32_t>();
    float* pg = g.data();
    for (int64_t o = 0; o < sp.outer; ++o)
      for (int64_t i = 0; i < sp.inner; ++i)
        pg[(o * sp.n + pa[o * sp.inner + i]) * sp.inner + i] = pd[o * sp.inner + i];
    in[0].add_fresh_grad(std::move(g));
  }, name);
}
}  // namespace

Variable sum(const Variable& x, int axis, bool keepdim) { return sum_scaled(x, axis, keepdim, false, "sum"); }
Variable mean(const Variable& x, int axis, bool keepdim) { return sum_scaled(x, axis, keepdim, true, "mean"); }

// Whole-tensor reductions treat x as one axis of length numel.
Variable sum(const Variable& x) {
  Tensor y = Tensor::zeros({});
  double acc = 0;  // double: a sum over 1e6 floats otherwise loses digits
  for (float v : x.value().values()) acc += v;
  y.data()[0] = float(acc);
  return make_result(std::move(y), {x}, [](const Tensor& dy, std::vector<Variable>& in) {
    in[0].add_grad(Tensor::full(in[0].shape(), dy.item()));
  }, "sum_all");
}

Variable mean(const Variable& x) {
  if (x.numel() == 0) throw std::invalid_argument("mean of an empty tensor");
  return mul(sum(x), 1.f / float(x.numel()));
}

Variable max(const Variable& x) {
  return max_impl(x, AxisSplit{0, 1, x.numel(), 1}, Shape{}, "max_all");
}

Variable max(const Variable& x, int axis, bool keepdim) {
  const AxisSplit sp = split_at_axis(x.shape(), axis, "max");
  return max_impl(x, sp, reduced_shape(x.shape(), sp.axis, keepdim), "max");
}

}  // namespace crayon
