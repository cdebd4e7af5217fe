#include "core/ops_norm.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <vector>

#include "core/check.h"
#include "core/lane_sum.h"
#include "core/parallel.h"
#include "core/replicas.h"

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
  // Values per channel: this shard's, and the global batch's when replicas share the step
  // (core/replicas.h: their partial sums are added before each use).
  Replicas* const rep = training ? active_replicas() : nullptr;
  const int64_t N = B * S;
  // Channels are independent: threads split them for the statistics, and the batch's planes
  // for the elementwise passes. Each channel's sums run in the same order for any split.
  // Per channel the sum of x, and last the count (with replicas: all reduced at once).
  std::vector<double> s(static_cast<size_t>(C + 1)), s2(static_cast<size_t>(C));
  s[size_t(C)] = double(N);
  const float* px = x.value().data();
  if (training) {
    parallel_for(C, [&](int64_t c0, int64_t c1) {
      for (int64_t c = c0; c < c1; ++c) {
        double a = 0;
        for (int64_t b = 0; b < B; ++b) {
          const float* p = px + (b * C + c) * S;
          a += lane_sum(S, [p](int64_t j) { return p[j]; });
        }
        s[size_t(c)] = a;
      }
    });
    if (rep) rep->sum(s);
  }
  const double total = s[size_t(C)];
  if (training && total < 2)
    throw std::invalid_argument(str("batch_norm: training needs more than one value per channel, got input ",
                                    shape_str(x.shape())));

  // Training takes two passes: the mean (above), then the squared deviations from it.
  Tensor mean = Tensor::empty(cs), invstd = Tensor::empty(cs);
  float *pm = mean.data(), *pis = invstd.data(), *prm = running_mean.data(), *prv = running_var.data();
  if (training) {
    for (int64_t c = 0; c < C; ++c) pm[c] = float(s[size_t(c)] / total);
    parallel_for(C, [&](int64_t c0, int64_t c1) {
      for (int64_t c = c0; c < c1; ++c) {
        const float mf = pm[c];
        double a = 0;
        for (int64_t b = 0; b < B; ++b) {
          const float* p = px + (b * C + c) * S;
          a += lane_sum(S, [p, mf](int64_t j) { return (p[j] - mf) * (p[j] - mf); });
        }
        s2[size_t(c)] = a;
      }
    });
    if (rep) rep->sum(s2);
    for (int64_t c = 0; c < C; ++c) {
      const double m = s[size_t(c)] / total, v = s2[size_t(c)] / total;
      prm[c] = float((1 - momentum) * prm[c] + momentum * m);
      prv[c] = float((1 - momentum) * prv[c] + momentum * v * total / (total - 1));
      pis[c] = float(1.0 / std::sqrt(v + eps));
    }
  } else {
    for (int64_t c = 0; c < C; ++c) {
      pm[c] = prm[c];
      pis[c] = float(1.0 / std::sqrt(double(prv[c]) + eps));
    }
  }

  // xhat = (x - mean) * invstd is recomputed in backward from x, not stored.
  Tensor y = Tensor::empty(x.shape());
  const float *pg = gamma.value().data(), *pb = beta.value().data();
  float* py = y.data();
  parallel_for(B * C, [&](int64_t p0, int64_t p1) {
    for (int64_t bc = p0; bc < p1; ++bc) {
      const int64_t c = bc % C;
      const float m = pm[c], is = pis[c], g = pg[c], bt = pb[c];
      const float* xr = px + bc * S;
      float* yr = py + bc * S;
      for (int64_t j = 0; j < S; ++j) yr[j] = g * ((xr[j] - m) * is) + bt;
    }
  });

  return make_result(std::move(y), {x, gamma, beta}, [=](const Tensor& dy, std::vector<Variable>& in) {
    const float* pd = dy.data();
    const float* px = in[0].value().data();
    const float *pm = mean.data(), *pis = invstd.data();
    // Per channel: sum(dy) and sum(dy * xhat) give dbeta, dgamma and the batch-stat terms
    // (one vector: sdy = sums[c], sdyx = sums[C + c]).
    std::vector<double> sums(size_t(2 * C), 0.0);
    double *sdy = sums.data(), *sdyx = sums.data() + C;
    parallel_for(C, [&](int64_t c0, int64_t c1) {
      for (int64_t c = c0; c < c1; ++c) {
        const float m = pm[c], is = pis[c];
        for (int64_t b = 0; b < B; ++b) {
          const float *d = pd + (b * C + c) * S, *xr = px + (b * C + c) * S;
          sdy[size_t(c)] += lane_sum(S, [d](int64_t j) { return d[j]; });
          sdyx[size_t(c)] += lane_sum(S, [d, xr, m, is](int64_t j) { return d[j] * ((xr[j] - m) * is); });
        }
      }
    });
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
    // With replicas, dx needs the global batch's sums (the parameters' gradients above stay
    // this shard's: they are summed with every other gradient after backward).
    if (rep) rep->sum(sums);
    // Training: dx = gamma*invstd/N * (N*dy - sum(dy) - xhat*sum(dy*xhat)) (mean and
    // variance depend on x). Eval: the statistics are constants, dx = gamma*invstd*dy.
    float* dx = in[0].grad_accumulator(&bt).data();
    const float* gm = in[1].value().data();
    parallel_for(B * C, [&](int64_t p0, int64_t p1) {
      for (int64_t bc = p0; bc < p1; ++bc) {
        const int64_t c = bc % C;
        const float m = pm[c], is = pis[c], k = gm[c] * is;
        const float mdy = float(sdy[size_t(c)] / total), mdyx = float(sdyx[size_t(c)] / total);
        const float *d = pd + bc * S, *xr = px + bc * S;
        float* o = dx + bc * S;
        if (!training)
          for (int64_t j = 0; j < S; ++j) o[j] = bt * o[j] + k * d[j];
        else if (bt == 0.f)
          for (int64_t j = 0; j < S; ++j) o[j] = k * (d[j] - mdy - ((xr[j] - m) * is) * mdyx);
        else
          for (int64_t j = 0; j < S; ++j) o[j] = bt * o[j] + k * (d[j] - mdy - ((xr[j] - m) * is) * mdyx);
      }
    });
  }, "batch_norm");
}

}  // namespace crayon
