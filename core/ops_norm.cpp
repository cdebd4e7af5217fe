#include "core/ops_norm.h"

#include <cmath>
#include <stdexcept>

#include "core/check.h"

namespace crayon {

Variable batch_norm(const Variable& x, const Variable& gamma, const Variable& beta, Tensor& running_mean,
                    Tensor& running_var, bool training, float momentum, float eps) {
  if (x.ndim() != 2 && x.ndim() != 4)
    throw std::invalid_argument(str("batch_norm: expected input (B, C) or (B, C, H, W), got ", shape_str(x.shape())));
  const int64_t B = x.size(0), C = x.size(1), S = x.numel() / std::max<int64_t>(1, B * C);  // S = H*W
  const Shape cs{C};
  check_same_shape("batch_norm gamma", cs, gamma.shape());
  check_same_shape("batch_norm beta", cs, beta.shape());
  check_same_shape("batch_norm running_mean", cs, running_mean.shape());
  check_same_shape("batch_norm running_var", cs, running_var.shape());
  const int64_t N = B * S;  // values per channel
  if (training && N < 2)
    throw std::invalid_argument(str("batch_norm: training needs more than one value per channel, got input ",
                                    shape_str(x.shape())));

  const float* px = x.value().data();
  Tensor mean = Tensor::empty(cs), invstd = Tensor::empty(cs);
  for (int64_t c = 0; c < C; ++c) {
    double m, v;
    if (training) {
      double s = 0, s2 = 0;
      for (int64_t b = 0; b < B; ++b) {
        const float* p = px + (b * C + c) * S;
        for (int64_t j = 0; j < S; ++j) s += p[j];
      }
      m = s / double(N);
      for (int64_t b = 0; b < B; ++b) {
        const float* p = px + (b * C + c) * S;
        for (int64_t j = 0; j < S; ++j) s2 += (p[j] - m) * (p[j] - m);
      }
      v = s2 / double(N);
      float& rm = running_mean.data()[c];
      float& rv = running_var.data()[c];
      rm = float((1 - momentum) * rm + momentum * m);
      rv = float((1 - momentum) * rv + momentum * v * double(N) / double(N - 1));
    } else {
      m = running_mean.data()[c];
      v = running_var.data()[c];
    }
    mean.data()[c] = float(m);
    invstd.data()[c] = float(1.0 / std::sqrt(v + eps));
  }

  Tensor y = Tensor::empty(x.shape());
  Tensor xhat = Tensor::empty(x.shape());
  const float *pg = gamma.value().data(), *pb = beta.value().data();
  for (int64_t b = 0; b < B; ++b)
    for (int64_t c = 0; c < C; ++c) {
      const int64_t base = (b * C + c) * S;
      const float m = mean.data()[c], is = invstd.data()[c];
      for (int64_t j = 0; j < S; ++j) {
        const float xh = (px[base + j] - m) * is;
        xhat.data()[base + j] = xh;
        y.data()[base + j] = pg[c] * xh + pb[c];
      }
    }

  return make_result(std::move(y), {x, gamma, beta}, [=](const Tensor& dy, std::vector<Variable>& in) {
    const float* pd = dy.data();
    const float* pxh = xhat.data();
    // Per channel: sum(dy) and sum(dy * xhat) give dbeta, dgamma and the batch-stat terms.
    std::vector<double> sdy(size_t(C), 0.0), sdyx(size_t(C), 0.0);
    for (int64_t b = 0; b < B; ++b)
      for (int64_t c = 0; c < C; ++c) {
        const int64_t base = (b * C + c) * S;
        for (int64_t j = 0; j < S; ++j) {
          sdy[size_t(c)] += pd[base + j];
          sdyx[size_t(c)] += double(pd[base + j]) * pxh[base + j];
        }
      }
    float bt;
    if (in[1].requires_grad()) {
      float* g = in[1].grad_accumulator(&bt).data();
      for (int64_t c = 0; c < C; ++c) g[c] = bt * g[c] + float(sdyx[size_t(c)]);
    }
    if (in[2].requires_grad()) {
      float* g = in[2].grad_accumulator(&bt).data();
      for (int64_t c = 0; c < C; ++c) g[c] = bt * g[c] + float(sdy[size_t(c)]);
    }
    if (!in[0].requires_grad()) return;
    // Training: dx = gamma*invstd/N * (N*dy - sum(dy) - xhat*sum(dy*xhat)) (mean and
    // variance depend on x). Eval: the statistics are constants, dx = gamma*invstd*dy.
    float* dx = in[0].grad_accumulator(&bt).data();
    const float* gm = in[1].value().data();
    for (int64_t b = 0; b < B; ++b)
      for (int64_t c = 0; c < C; ++c) {
        const int64_t base = (b * C + c) * S;
        const float k = gm[c] * invstd.data()[c];
        const float mdy = float(sdy[size_t(c)] / double(N)), mdyx = float(sdyx[size_t(c)] / double(N));
        for (int64_t j = 0; j < S; ++j) {
          const float g = training ? k * (pd[base + j] - mdy - pxh[base + j] * mdyx) : k * pd[base + j];
          dx[base + j] = bt * dx[base + j] + g;
        }
      }
  }, "batch_norm");
}

}  // namespace crayon
