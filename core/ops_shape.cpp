#include "core/ops_shape.h"

#include <stdexcept>
#include <utility>

#include "core/check.h"

namespace crayon {

Variable reshape(const Variable& x, const Shape& shape) {
  Tensor y = x.value().reshape(shape);
  return make_result(std::move(y), {x}, [](const Tensor& dy, std::vector<Variable>& in) {
    in[0].add_grad(dy.reshape(in[0].shape()));
  }, "reshape");
}

Variable flatten(const Variable& x, int start_dim) {
  const int nd = x.ndim();
  const int s = start_dim < 0 ? start_dim + nd : start_dim;
  if (s < 0 || s >= std::max(nd, 1))
    throw std::invalid_argument(str("flatten: start_dim ", start_dim, " out of range for shape ", shape_str(x.shape())));
  Shape out(x.shape().begin(), x.shape().begin() + s);
  int64_t rest = 1;
  for (int i = s; i < nd; ++i) rest *= x.shape()[size_t(i)];
  out.push_back(rest);
  return reshape(x, out);
}

namespace {
// Copy src (shape s) into dst with axes d0 and d1 swapped. The shape is viewed as
// (A, n0, B, n1, C) with A, B, C the products of the dims around the two axes.
void swap_axes(const float* src, float* dst, const Shape& s, int d0, int d1) {
  int64_t A = 1, B = 1, C = 1;
  for (int i = 0; i < d0; ++i) A *= s[size_t(i)];
  for (int i = d0 + 1; i < d1; ++i) B *= s[size_t(i)];
  for (size_t i = size_t(d1) + 1; i < s.size(); ++i) C *= s[i];
  const int64_t n0 = s[size_t(d0)], n1 = s[size_t(d1)];
  for (int64_t a = 0; a < A; ++a)
    for (int64_t i = 0; i < n0; ++i)
      for (int64_t b = 0; b < B; ++b)
        for (int64_t j = 0; j < n1; ++j) {
          const float* from = src + ((((a * n0 + i) * B + b) * n1 + j) * C);
          float* to = dst + ((((a * n1 + j) * B + b) * n0 + i) * C);
          for (int64_t c = 0; c < C; ++c) to[c] = from[c];
        }
}
}  // namespace

Variable transpose(const Variable& x, int dim0, int dim1) {
  const int nd = x.ndim();
  int d0 = dim0 < 0 ? dim0 + nd : dim0, d1 = dim1 < 0 ? dim1 + nd : dim1;
  if (d0 < 0 || d0 >= nd || d1 < 0 || d1 >= nd)
    throw std::invalid_argument(str("transpose: dims (", dim0, ", ", dim1, ") out of range for shape ",
                                    shape_str(x.shape())));
  if (d0 == d1) return reshape(x, x.shape());
  if (d0 > d1) std::swap(d0, d1);
  Shape out = x.shape();
  std::swap(out[size_t(d0)], out[size_t(d1)]);
  Tensor y = Tensor::empty(out);
  swap_axes(x.value().data(), y.data(), x.shape(), d0, d1);
  return make_result(std::move(y), {x}, [d0, d1, out](const Tensor& dy, std::vector<Variable>& in) {
    Tensor g = Tensor::empty(in[0].shape());
    swap_axes(dy.data(), g.data(), out, d0, d1);  // the same swap undoes itself
    in[0].add_fresh_grad(std::move(g));
  }, "transpose");
}

}  // namespace crayon
