#include "quant/bound.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>

#include "core/check.h"
#include "core/parallel.h"
#include "core/ops.h"
#include "nn/activations.h"
#include "nn/conv2d.h"
#include "nn/linear.h"
#include "nn/pooling.h"
#include "quant/fake_quant_module.h"
#include "quant/qat.h"

namespace crayon {

namespace {

constexpr double kUnit = 1.0 / 16777216.0;  // u = 2^-24, float32's unit round-off

// γ_n = n u / (1 - n u): the relative round-off of a float32 sum of n terms.
double gamma(int64_t n) { return double(n) * kUnit / (1.0 - double(n) * kUnit); }

// The smallest float >= v (v >= 0).
inline float round_up(double v) {
  const float f = float(v);
  return double(f) >= v ? f : std::nextafter(f, INFINITY);
}

// Elementwise passes split over the threads: f(begin, end) on [0, n).
constexpr int64_t kGrain = 1 << 14;
void elementwise(int64_t n, const std::function<void(int64_t, int64_t)>& f) { parallel_for(n, f, kGrain); }

Tensor abs_of(const Tensor& t) {
  Tensor out = Tensor::empty(t.shape());
  const float* p = t.data();
  float* o = out.data();
  elementwise(t.numel(), [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) o[i] = std::fabs(p[i]);
  });
  return out;
}

// sum_k factor_k * t_k elementwise, inflated and rounded up so it bounds the exact value
// (every input >= 0).
Tensor bound_sum(std::initializer_list<std::pair<double, const Tensor*>> terms, double inflate) {
  const Tensor& first = *terms.begin()->second;
  Tensor out = Tensor::zeros(first.shape());
  float* o = out.data();
  elementwise(first.numel(), [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      double acc = 0;
      for (const auto& [factor, t] : terms) acc += factor * double(t->data()[i]);
      o[i] = round_up(acc * (1.0 + inflate));
    }
  });
  return out;
}

// The layer's weight and bias (undefined if none) as stored, without a parametrization.
std::pair<Tensor, Tensor> weight_and_bias(const Module& m) {
  const auto params = m.named_parameters();
  return {params.at(0).second.value(), params.size() > 1 ? params[1].second.value() : Tensor()};
}

// The linear map of a conv or linear layer (no bias) applied to a tensor of its input shape.
Tensor apply_linear(const Module& layer, const Tensor& w, const Tensor& x) {
  NoGradGuard ng;
  if (const auto* conv = dynamic_cast<const Conv2d*>(&layer))
    return conv2d(Variable(x), Variable(w), Variable(), conv->params()).value();
  return matmul(Variable(x), Variable(w), false, true).value();
}

// Largest |a - b| and largest bound per sample (rows of the flattened tensors).
void record(BoundPoint& p, const Tensor& a, const Tensor& b, const Tensor& delta) {
  const int64_t n = a.size(0), per = a.numel() / n;
  const float* pa = a.data();
  const float* pb = b.data();
  const float* pd = delta.data();
  p.measured.assign(size_t(n), 0.0);
  p.bound.assign(size_t(n), 0.0);
  parallel_for(n, [&](int64_t s0, int64_t s1) {
    for (int64_t s = s0; s < s1; ++s) {
      double m = 0, d = 0;
      for (int64_t i = s * per; i < (s + 1) * per; ++i) {
        m = std::max(m, std::fabs(double(pa[i]) - double(pb[i])));
        d = std::max(d, double(pd[i]));
      }
      p.measured[size_t(s)] = m;
      p.bound[size_t(s)] = d;
    }
  }, std::max<int64_t>(1, kGrain / std::max<int64_t>(per, 1)));
}

}  // namespace

BoundResult propagate_bound(Sequential& quantized, Sequential& reference, const Tensor& x,
                            const GridInput& on_grid) {
  NoGradGuard ng;
  quantized.eval();
  reference.eval();
  BoundResult r;
  Tensor xf = x, xq = x;  // the reference and quantized paths
  Tensor delta = Tensor::zeros(x.shape());
  size_t j = 0;  // position in reference
  bool seen_input = false;
  for (size_t i = 0; i < quantized.size(); ++i) {
    Module& q = quantized[i];
    const std::string name = str("layer ", i, " (", q.spec(), ")");
    if (auto* fq = dynamic_cast<FakeQuant*>(&q)) {
      // The grid's own error on this sample, added to what arrived.
      const Tensor before = xq;
      if (on_grid) on_grid(r.points.size(), *fq, before);
      xq = fq->forward(Variable(xq)).value();
      Tensor next = Tensor::empty(delta.shape());
      const float* pb = before.data();
      const float* pq = xq.data();
      const float* pd = delta.data();
      float* pn = next.data();
      elementwise(delta.numel(), [&](int64_t b, int64_t e) {
        for (int64_t k = b; k < e; ++k) pn[k] = round_up(double(pd[k]) + std::fabs(double(pb[k]) - double(pq[k])));
      });
      delta = next;
      BoundPoint p{seen_input ? name : "input", {}, {}};
      record(p, xf, xq, delta);
      r.points.push_back(std::move(p));
      seen_input = true;
      continue;
    }
    CRAYON_CHECK(j < reference.size(), "propagate_bound: the reference model has fewer layers");
    Module& f = reference[j++];
    const Tensor xf_in = xf, xq_in = xq;
    xf = f.forward(Variable(xf)).value();
    xq = q.forward(Variable(xq)).value();
    if (dynamic_cast<Conv2d*>(&q) || dynamic_cast<Linear*>(&q)) {
      const auto [w, b] = weight_and_bias(f);
      const WeightFakeQuant* wfq = weight_fake_quant_of(q);
      const Tensor wq = wfq ? (*wfq)(Variable(weight_and_bias(q).first)).value() : weight_and_bias(q).first;
      const int64_t O = w.size(0), per = w.numel() / O;
      Tensor aw = Tensor::empty(w.shape()), wdiff = Tensor::empty(w.shape());
      {
        const float* pw = w.data();
        const float* pq = wq.data();
        float* pa = aw.data();
        float* pd = wdiff.data();
        for (int64_t k = 0; k < w.numel(); ++k) {
          pa[k] = std::fabs(pw[k]);
          pd[k] = std::fabs(pw[k] - pq[k]);  // exact: a weight and its grid point are within a factor 2
        }
      }
      const Tensor axq = abs_of(xq_in);
      const Tensor A = apply_linear(q, aw, delta);   // Σ|W| δ
      const Tensor B = apply_linear(q, wdiff, axq);  // Σ|W − Ŵ| |x̂|
      const Tensor D = apply_linear(q, aw, axq);     // Σ|W| |x̂|
      // Round-off of the two float32 paths: γₙ (Σ|W||x| + Σ|Ŵ||x̂| + 2|b|), n = fan-in + 1, and
      // Σ|W||x| ≤ D + A, Σ|Ŵ||x̂| ≤ D + B.
      const double g = gamma(per + 1);
      const int64_t inner = A.numel() / (A.size(0) * O);
      Tensor next = Tensor::empty(A.shape());
      const float* pA = A.data();
      const float* pB = B.data();
      const float* pD = D.data();
      const float* pb = b.defined() ? b.data() : nullptr;
      float* pn = next.data();
      // Rows of `inner` outputs share one output channel (and bias).
      parallel_for(A.numel() / inner, [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) {
          const double bias = pb ? std::fabs(double(pb[r % O])) : 0.0;
          for (int64_t k = r * inner; k < (r + 1) * inner; ++k)
            pn[k] = round_up(((double(pA[k]) + double(pB[k])) * (1.0 + g) + g * (2.0 * double(pD[k]) + 2.0 * bias)) *
                             (1.0 + 4.0 * g));
        }
      }, std::max<int64_t>(1, kGrain / inner));
      delta = next;
    } else if (dynamic_cast<ReLU*>(&q) || dynamic_cast<ReLU6*>(&q)) {
      // The reference's input lies in [ẑ − δ, ẑ + δ] around the quantized path's ẑ, so its
      // output lies in the clamp of that interval: the largest distance from clamp(ẑ) to it
      // (at most δ, since the clamp is 1-Lipschitz; 0 where the whole interval is clamped).
      const float hi = dynamic_cast<ReLU6*>(&q) ? 6.f : INFINITY;
      Tensor next = Tensor::empty(delta.shape());
      const float* pz = xq_in.data();
      const float* pd = delta.data();
      float* pn = next.data();
      auto clamp = [hi](double v) { return std::min<double>(std::max(v, 0.0), hi); };
      elementwise(delta.numel(), [&](int64_t b, int64_t e) {
        for (int64_t k = b; k < e; ++k) {
          const double zq = pz[k], d = pd[k], c = clamp(zq);
          pn[k] = round_up(std::max(clamp(zq + d) - c, c - clamp(zq - d)));
        }
      });
      delta = next;
    } else if (dynamic_cast<Dropout*>(&q)) {
      // The identity in eval: delta stays.
    } else if (auto* mp = dynamic_cast<MaxPool2d*>(&q)) {
      // The reference's window maximum lies between the maxima of ẑ − δ and ẑ + δ.
      Tensor up = Tensor::empty(delta.shape()), down = Tensor::empty(delta.shape());
      const float* pz = xq_in.data();
      const float* pd = delta.data();
      float* pu = up.data();
      float* pl = down.data();
      elementwise(delta.numel(), [&](int64_t b, int64_t e) {
        for (int64_t k = b; k < e; ++k) {
          pu[k] = round_up(double(pz[k]) + double(pd[k]));
          pl[k] = -round_up(double(pd[k]) - double(pz[k]));  // rounded down
        }
      });
      const Tensor hi = max_pool2d(Variable(up), mp->params()).value();
      const Tensor lo = max_pool2d(Variable(down), mp->params()).value();
      Tensor next = Tensor::empty(xq.shape());
      const float* pm = xq.data();
      const float* ph = hi.data();
      const float* plo = lo.data();
      float* pn = next.data();
      elementwise(xq.numel(), [&](int64_t b, int64_t e) {
        for (int64_t k = b; k < e; ++k) {
          const double m = pm[k];
          pn[k] = round_up(std::max(double(ph[k]) - m, m - double(plo[k])));
        }
      });
      delta = next;
    } else if (auto* ap = dynamic_cast<AvgPool2d*>(&q)) {
      const Pool2dParams& p = ap->params();
      const double g = gamma(int64_t(p.kernel_h) * p.kernel_w + 1);
      const Tensor md = avg_pool2d(Variable(delta), p).value();
      const Tensor mf = avg_pool2d(Variable(abs_of(xf_in)), p).value();
      const Tensor mq = avg_pool2d(Variable(abs_of(xq_in)), p).value();
      delta = bound_sum({{1.0, &md}, {g, &mf}, {g, &mq}}, 4.0 * g);
    } else if (dynamic_cast<Flatten*>(&q)) {
      delta = delta.reshape(xq.shape());
    } else {
      throw std::invalid_argument(str("propagate_bound: no bound rule for ", name,
                                      " (expected conv, linear, relu, relu6, max/avg pool, flatten, dropout)"));
    }
  }
  CRAYON_CHECK(j == reference.size(), "propagate_bound: the reference model has more layers");
  if (xq.ndim() != 2) throw std::invalid_argument(str("propagate_bound: the model outputs ", shape_str(xq.shape())));
  r.reference_logits = xf;
  r.quantized_logits = xq;
  r.logit_bound = delta;
  BoundPoint logits{"logits", {}, {}};
  record(logits, xf, xq, delta);
  r.points.push_back(std::move(logits));
  const int64_t n = xf.size(0), c = xf.size(1);
  for (int64_t s = 0; s < n; ++s) {
    const float* z = xf.data() + s * c;
    const float* zq = xq.data() + s * c;
    const float* d = delta.data() + s * c;
    int64_t t = 0, tq = 0;
    for (int64_t k = 1; k < c; ++k) {
      if (z[k] > z[t]) t = k;
      if (zq[k] > zq[tq]) tq = k;
    }
    bool certain = true;
    for (int64_t k = 0; k < c; ++k)
      if (k != t && !(double(z[t]) - double(z[k]) > double(d[t]) + double(d[k]))) certain = false;
    r.certified.push_back(certain);
    r.kept.push_back(t == tq);
  }
  return r;
}

namespace {
Tensor rows_appended(const Tensor& a, const Tensor& b) {
  if (!a.defined()) return b;
  CRAYON_CHECK(a.ndim() == 2 && b.ndim() == 2 && a.size(1) == b.size(1), "append: logits of different classes");
  Tensor out = Tensor::empty({a.size(0) + b.size(0), a.size(1)});
  std::memcpy(out.data(), a.data(), a.nbytes());
  std::memcpy(out.data() + a.numel(), b.data(), b.nbytes());
  return out;
}
}  // namespace

void append(BoundResult& a, const BoundResult& b) {
  if (a.points.empty()) {
    a = b;
    return;
  }
  CRAYON_CHECK(a.points.size() == b.points.size(), "append: results of different models");
  a.reference_logits = rows_appended(a.reference_logits, b.reference_logits);
  a.quantized_logits = rows_appended(a.quantized_logits, b.quantized_logits);
  a.logit_bound = rows_appended(a.logit_bound, b.logit_bound);
  for (size_t i = 0; i < a.points.size(); ++i) {
    a.points[i].measured.insert(a.points[i].measured.end(), b.points[i].measured.begin(), b.points[i].measured.end());
    a.points[i].bound.insert(a.points[i].bound.end(), b.points[i].bound.begin(), b.points[i].bound.end());
  }
  a.certified.insert(a.certified.end(), b.certified.begin(), b.certified.end());
  a.kept.insert(a.kept.end(), b.kept.begin(), b.kept.end());
}

}  // namespace crayon
