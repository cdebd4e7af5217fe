#include "quant/adaround.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>

#include "core/check.h"
#include "core/ops.h"
#include "core/rng.h"
#include "nn/activations.h"
#include "nn/conv2d.h"
#include "nn/linear.h"
#include "quant/qat.h"

namespace crayon {

namespace {

constexpr float kZeta = 1.1f, kGamma = -0.1f;
constexpr int64_t kChunk = 128;  // rows per forward pass outside the optimization



// The layer's map with the given weight (its own bias, as a constant, and geometry).
Variable apply(const Module& layer, const Variable& x, const Variable& w) {
  const Variable bias = layer.find_parameter("bias");
  const Variable b = bias.defined() ? Variable(bias.value()) : Variable();
  if (const auto* conv = dynamic_cast<const Conv2d*>(&layer)) return conv2d(x, w, b, conv->params());
  const Variable y = matmul(x, w, false, true);
  return b.defined() ? y + b : y;
}

// 0 none, 1 ReLU, 2 ReLU6: the activation after layer i (FakeQuant modules skipped).
int activation_after(const Sequential& model, size_t i) {
  for (size_t j = i + 1; j < model.size(); ++j) {
    if (dynamic_cast<const FakeQuant*>(&model[j])) continue;
    if (dynamic_cast<const ReLU*>(&model[j])) return 1;
    if (dynamic_cast<const ReLU6*>(&model[j])) return 2;
    return 0;
  }
  return 0;
}

Variable activate(const Variable& y, int f) { return f == 1 ? relu(y) : f == 2 ? relu6(y) : y; }

// Rows of every batch in one tensor.
Tensor concat_rows(const std::vector<Tensor>& batches) {
  int64_t n = 0;
  for (const Tensor& b : batches) n += b.size(0);
  Shape s = batches[0].shape();
  s[0] = n;
  Tensor out = Tensor::empty(s);
  int64_t at = 0;
  for (const Tensor& b : batches) {
    if (b.numel() / b.size(0) != out.numel() / n)
      throw std::invalid_argument(str("adaround: calibration batches of different shapes: ", shape_str(b.shape()),
                                      " and ", shape_str(batches[0].shape())));
    std::memcpy(out.data() + at * (out.numel() / n), b.data(), b.nbytes());
    at += b.size(0);
  }
  return out;
}

// f(x) for every row of x, kChunk rows at a time.
Tensor map_rows(const std::function<Tensor(const Tensor&)>& f, const Tensor& x) {
  const int64_t n = x.size(0);
  Tensor out;
  for (int64_t a = 0; a < n; a += kChunk) {
    const Tensor y = f(x.slice(a, std::min(n, a + kChunk)));
    if (!out.defined()) {
      Shape s = y.shape();
      s[0] = n;
      out = Tensor::empty(s);
    }
    std::memcpy(out.data() + a * (out.numel() / n), y.data(), y.nbytes());
  }
  return out;
}

// sum over channels of mean over batch and space of (f(layer(x, w)) - target)^2, over all rows.
double reconstruction(const Module& layer, const Tensor& x, const Tensor& target, const Tensor& w, int f) {
  NoGradGuard ng;
  const int64_t n = x.size(0);
  double sum = 0;
  for (int64_t a = 0; a < n; a += kChunk) {
    const int64_t e = std::min(n, a + kChunk);
    const Tensor y = activate(apply(layer, Variable(x.slice(a, e)), Variable(w)), f).value();
    const Tensor t = target.slice(a, e);
    for (int64_t k = 0; k < y.numel(); ++k) {
      const double d = double(y.data()[k]) - double(t.data()[k]);
      sum += d * d;
    }
  }
  const int64_t channels = target.size(1);
  return sum / double(target.numel()) * double(channels);
}

// The grid of one layer's weights, per element.
struct Grid {
  Tensor scale, zero, base, nearest, free;  // full weight shape; base = floor(w/s) + z
  Tensor lo, hi;                            // per element: the codes of its channel's min and max
  Tensor wmin, wmax;                        // ... and their values
  int32_t qmin = 0, qmax = 0;
};

Grid grid_of(const Tensor& w, const QuantSpec& spec) {
  const QParams qp = weight_qparams(w, spec);
  const int64_t C = spec.axis < 0 ? 1 : w.size(0), per = w.numel() / C;
  Grid g;
  g.qmin = spec.qmin(), g.qmax = spec.qmax();
  for (Tensor* t : {&g.scale, &g.zero, &g.base, &g.nearest, &g.free, &g.lo, &g.hi, &g.wmin, &g.wmax})
    *t = Tensor::empty(w.shape());
  for (int64_t c = 0; c < C; ++c) {
    const float s = qp.scale[size_t(c)];
    const float z = float(qp.zero_point[size_t(c)]);
    const float* wc = w.data() + c * per;
    const float mn = *std::min_element(wc, wc + per), mx = *std::max_element(wc, wc + per);
    auto code = [&](float v) { return std::clamp(std::nearbyint(v / s) + z, float(g.qmin), float(g.qmax)); };
    for (int64_t j = 0; j < per; ++j) {
      const int64_t k = c * per + j;
      g.scale.data()[k] = s;
      g.zero.data()[k] = z;
      g.base.data()[k] = std::floor(wc[j] / s) + z;
      g.nearest.data()[k] = code(wc[j]);
      g.free.data()[k] = wc[j] == mn || wc[j] == mx ? 0.f : 1.f;
      g.lo.data()[k] = code(mn);
      g.hi.data()[k] = code(mx);
      g.wmin.data()[k] = mn;
      g.wmax.data()[k] = mx;
    }
  }
  return g;
}

// Grid values of codes q, pinned elements at their own (float) values, all within the range.
Tensor weights_of_codes(const Tensor& w, const Grid& g, const Tensor& codes) {
  Tensor out = w.clone();
  for (int64_t k = 0; k < w.numel(); ++k) {
    if (g.free.data()[k] == 0.f) continue;
    const float q = std::clamp(codes.data()[k], g.lo.data()[k], g.hi.data()[k]);
    out.data()[k] = std::clamp((q - g.zero.data()[k]) * g.scale.data()[k], g.wmin.data()[k], g.wmax.data()[k]);
  }
  return out;
}

}  // namespace

std::vector<AdaRoundLayer> adaround(Sequential& model, const std::vector<Tensor>& batches,
                                    const StepperFactory& make_step, const AdaRoundOptions& o) {
  if (!is_quantized(model))
    throw std::invalid_argument("adaround: the model is not prepared for quantization (prepare_qat first)");
  if (batches.empty()) throw std::invalid_argument("adaround: no calibration batches");
  if (o.iterations < 1 || o.batch < 1 || !(o.lambda >= 0) || !(o.beta_start > 0) ||
      !(o.beta_end > 0) || !(o.warmup >= 0 && o.warmup < 1))
    throw std::invalid_argument(str("adaround: expected iterations >= 1, batch >= 1, lambda >= 0, betas > 0 "
                                    "and warmup in [0, 1), got ", o.iterations, ", ", o.batch, ", ",
                                    o.lambda, ", ", o.beta_start, "/", o.beta_end, ", ", o.warmup));
  Shape input = batches[0].shape();
  input.erase(input.begin());
  const std::shared_ptr<Sequential> reference = float_copy(model, input);
  TrainModeGuard mode(model);
  model.eval();
  reference->eval();
  Rng rng(o.seed);
  std::vector<AdaRoundLayer> out;
  {
    Tensor xq = concat_rows(batches), xf = xq;  // the layer's input in the model and in the float model
    const int64_t n = xq.size(0), chunks = (n + o.batch - 1) / o.batch;
    size_t r = 0;  // the reference layer beside model layer i
    for (size_t i = 0; i < model.size(); ++i) {
      Module& layer = model[i];
      if (dynamic_cast<const FakeQuant*>(&layer)) continue;
      Module& ref = (*reference)[r++];
      if (is_weight_layer(layer)) {
        const WeightFakeQuant* wfq = weight_fake_quant_of(layer);
        CRAYON_CHECK(wfq != nullptr, "adaround: layer ", i, " has no weight fake-quant");
        Variable wvar = layer.find_parameter("weight");
        const Tensor w = wvar.value().clone();
        const int f = activation_after(model, i);
        const Tensor target = map_rows([&](const Tensor& x) {
          NoGradGuard ng;
          return activate(ref(Variable(x)), f).value();
        }, xf);
        const Grid g = grid_of(w, wfq->spec);

        // V with h(V) = w/s - floor(w/s) at the start.
        Tensor v0 = Tensor::empty(w.shape());
        for (int64_t k = 0; k < w.numel(); ++k) {
          const double rest = double(w.data()[k]) / double(g.scale.data()[k]) + g.zero.data()[k] - g.base.data()[k];
          const double p = std::clamp((rest - kGamma) / (kZeta - kGamma), 1e-4, 1 - 1e-4);
          v0.data()[k] = float(std::log(p / (1 - p)));
        }
        Variable V(v0, true);
        const std::function<void()> step = make_step({V});
        const Variable S(g.scale), Z(g.zero), base(g.base), M(g.free);
        Tensor pinned = Tensor::zeros(w.shape());  // the pinned weights' grid values, 0 elsewhere
        for (int64_t k = 0; k < w.numel(); ++k)
          if (g.free.data()[k] == 0.f) pinned.data()[k] = (g.nearest.data()[k] - g.zero.data()[k]) * g.scale.data()[k];
        const Variable pinned_values(pinned);
        const int64_t warm = int64_t(o.warmup * double(o.iterations));
        const float channels = float(target.size(1));
        for (int64_t it = 0; it < o.iterations; ++it) {
          const int64_t c = int64_t(rng.below(uint64_t(chunks)));
          const int64_t a = c * o.batch, e = std::min(n, a + o.batch);
          V.zero_grad();
          const Variable h = clamp(sigmoid(V) * (kZeta - kGamma) + kGamma, 0.f, 1.f);
          const Variable wq = M * ((clamp(base + h, float(g.qmin), float(g.qmax)) - Z) * S) + pinned_values;
          const Variable y = activate(apply(layer, Variable(xq.slice(a, e)), wq), f);
          const Variable d = y - Variable(target.slice(a, e));
          Variable loss = mean(d * d) * channels;
          if (it >= warm && o.lambda > 0) {
            const double t = double(it - warm) / double(std::max<int64_t>(1, o.iterations - warm));
            const float beta = float(o.beta_start + (o.beta_end - o.beta_start) * t);
            loss = loss + sum(M - M * pow(abs(h * 2.f - 1.f), beta)) * float(o.lambda);
          }
          loss.backward();
          step();
        }

        // Hard codes: up where V >= 0; then the better of them and nearest.
        Tensor codes = g.base.clone();
        for (int64_t k = 0; k < codes.numel(); ++k)
          codes.data()[k] = g.free.data()[k] == 0.f ? g.nearest.data()[k]
                                                    : std::clamp(codes.data()[k] + (V.value().data()[k] >= 0 ? 1.f : 0.f),
                                                                 float(g.qmin), float(g.qmax));
        // The losses of what the fake-quant will read: the pinned extremes round to nearest.
        const Tensor w_ada = weights_of_codes(w, g, codes);
        const Tensor read_ada = (*wfq)(Variable(w_ada)).value(), read_near = (*wfq)(Variable(w)).value();
        AdaRoundLayer rep;
        rep.layer = i;
        rep.nearest_loss = reconstruction(layer, xq, target, read_near, f);
        rep.adaround_loss = reconstruction(layer, xq, target, read_ada, f);
        rep.kept_nearest = rep.adaround_loss > rep.nearest_loss;
        int64_t changed = 0;
        for (int64_t k = 0; k < codes.numel(); ++k) changed += codes.data()[k] != g.nearest.data()[k];
        rep.changed = rep.kept_nearest ? 0.0 : double(changed) / double(codes.numel());
        // Nearest keeps the float weights (their fake-quant is nearest rounding).
        if (!rep.kept_nearest) wvar.value().copy_from(w_ada);
        out.push_back(rep);
      }
      xq = map_rows([&](const Tensor& x) {
        NoGradGuard ng;
        return layer(Variable(x)).value();
      }, xq);
      xf = map_rows([&](const Tensor& x) {
        NoGradGuard ng;
        return ref(Variable(x)).value();
      }, xf);
    }
  }
  return out;
}

}  // namespace crayon
