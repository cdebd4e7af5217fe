// crayon demo ste (DESIGN.md idea 6). round() is a staircase: flat between its jumps, so its
// derivative is 0 almost everywhere and no gradient reaches what is rounded. The
// straight-through estimator rounds in the forward pass and passes the gradient through as if
// the staircase were the identity (plain), or only where the value was not clamped (clipped).
// Part 1 shows the staircase and the three gradients, measured by autograd and by a finite
// difference; part 2 trains the same 2-bit-weight MNIST classifier three ways.
#include <algorithm>
#include <cmath>

#include "apps/demo.h"
#include "apps/evaluate.h"
#include "core/check.h"
#include "core/ops.h"
#include "core/rng.h"
#include "quant/fake_quant.h"

namespace crayon {

namespace {

// d fake_quant(x) / dx by autograd, for one scalar x.
float ste_gradient(float x, const QParams& qp, const QuantSpec& spec, Ste ste) {
  Variable v(Tensor::from({1}, {x}), true);
  sum(fake_quant(v, qp, spec, ste)).backward();
  return v.grad().values()[0];
}

struct Trained {
  double accuracy = 0, loss = 0, grad_norm = 0;  // grad_norm: summed over steps, what reached W
  double outside = 0;  // fraction of the latent weights the grid clamps
  double drift = 0;    // how far the farthest of them lies past its clamp threshold
  double moved = 0;    // the largest change of a weight over the training
  int64_t initial_nonzero = 0;  // initial weights that do not round to 0
};

// Logistic regression y = x Q(W)^T (no bias, so nothing learns around the grid) on the
// training images; Q rounds W onto a fixed 2-bit grid of step kStep. how: "none" (the true
// gradient of round: the quantized W enters as a constant), "plain" or "clipped" STE.
constexpr float kStep = 0.1f;

Trained train_on_grid(const DemoBatch& train, const DemoBatch& test, const std::string& how, uint64_t seed) {
  Trained t;
  const QuantSpec spec{.bits = 2, .symmetric = true};
  const QParams qp{{kStep}, {0}, -1};
  // A latent weight is clamped once it rounds outside the integers: beyond (qmin - ½) or (qmax + ½) steps.
  const double lo = (spec.qmin() - 0.5) * kStep, hi = (spec.qmax() + 0.5) * kStep;
  Rng rng(seed);
  Variable w(Tensor::uniform({10, 784}, rng, -0.01f, 0.01f), true);
  const Tensor w0 = w.value().clone();
  const Tensor q0 = fake_quant_values(w0, qp, spec);
  for (float v : q0.values()) t.initial_nonzero += v != 0.f;
  const Tensor x = train.images.reshape({train.images.size(0), 784});
  const float lr = 0.1f;
  for (int epoch = 0; epoch < 2; ++epoch)
    for (int64_t b = 0; b < x.size(0); b += 100) {
      const int64_t e = std::min(b + 100, x.size(0));
      // "none": round()'s own derivative, 0, as autograd computes it: the grid values plus
      // 0 · w, so the gradient reaching w is measured (and is exactly 0).
      const Variable wq = how == "none" ? add(Variable(fake_quant_values(w.value(), qp, spec)), mul(w, 0.f))
                                        : fake_quant(w, qp, spec, how == "plain" ? Ste::plain : Ste::clipped);
      Variable loss = cross_entropy(matmul(Variable(x.slice(b, e)), wq, false, true), train.labels.slice(b, e));
      t.loss = loss.item();
      loss.backward();
      double g2 = 0;
      float* wv = w.value().data();
      const float* g = w.grad().data();
      for (int64_t i = 0; i < w.numel(); ++i) g2 += double(g[i]) * g[i], wv[i] -= lr * g[i];
      t.grad_norm += std::sqrt(g2);
      w.zero_grad();
    }
  const Tensor xt = test.images.reshape({test.images.size(0), 784});
  NoGradGuard no_grad;
  const Tensor logits = matmul(Variable(xt), Variable(fake_quant_values(w.value(), qp, spec)), false, true).value();
  const std::vector<int32_t> pred = predictions(logits);
  int64_t correct = 0;
  for (size_t i = 0; i < pred.size(); ++i) correct += pred[i] == test.labels.data_as<int32_t>()[i];
  t.accuracy = double(correct) / double(pred.size());
  for (float v : w.value().values()) {
    t.outside += v < lo || v > hi;
    t.drift = std::max({t.drift, lo - double(v), double(v) - hi});
  }
  t.outside /= double(w.numel());
  for (int64_t i = 0; i < w.numel(); ++i)
    t.moved = std::max(t.moved, double(std::fabs(w.value().data()[i] - w0.data()[i])));
  return t;
}

}  // namespace

Demo demo_ste(const DemoOptions& o) {
  Demo d{"ste", {}, {}, {}, {}};
  const QuantSpec spec{.bits = 2, .symmetric = true};  // integers -2..1
  const QParams qp{{0.5f}, {0}, -1};                    // values -1, -0.5, 0, 0.5
  DemoTable stair{"the 2-bit staircase (step 0.5, integers -2..1) and its gradients",
                  {"x", "round to grid", "finite difference", "plain STE", "clipped STE"},
                  {}};
  double fd_max = 0;
  for (int i = -7; i <= 5; ++i) {
    const float x = 0.25f * float(i) + 0.1f;
    const Tensor at = Tensor::from({3}, {x - 1e-3f, x, x + 1e-3f});
    const Tensor q = fake_quant_values(at, qp, spec);
    const double fd = (q.values()[2] - q.values()[0]) / 2e-3;
    fd_max = std::max(fd_max, std::fabs(fd));
    stair.rows.push_back({fixed(x, 2), fixed(q.values()[1], 2), fixed(fd, 1),
                          fixed(ste_gradient(x, qp, spec, Ste::plain), 0),
                          fixed(ste_gradient(x, qp, spec, Ste::clipped), 0)});
  }
  d.numbers.push_back({"finite_difference_max", fd_max});

  const DemoBatch train = mnist_batch(o, true, 10000), test = mnist_batch(o, false, kDemoTestImages);
  DemoTable learn{str("MNIST logistic regression, weights on a 2-bit grid (step ", kStep, ", values ", -2 * kStep, ", ",
                      -kStep, ", 0, ", kStep, "), SGD lr 0.1, 2 epochs of 10000 images"),
                  {"gradient through round()", "test accuracy %", "last loss", "gradient reaching W",
                   "latent W clamped %", "farthest past the clamp"},
                  {}};
  for (const char* how : {"none", "plain", "clipped"}) {
    const Trained t = train_on_grid(train, test, how, o.seed);
    const std::string label = std::string(how) == "none" ? "none (round's own: 0)" : str(how, " STE");
    learn.rows.push_back({label, fixed(100 * t.accuracy, 2), fixed(t.loss, 3), sci(t.grad_norm),
                          fixed(100 * t.outside, 2), fixed(t.drift, 3)});
    d.numbers.push_back({str(how, "_accuracy"), t.accuracy});
    d.numbers.push_back({str(how, "_gradient"), t.grad_norm});
    d.numbers.push_back({str(how, "_outside"), t.outside});
    d.numbers.push_back({str(how, "_drift"), t.drift});
    d.numbers.push_back({str(how, "_moved"), t.moved});
    d.numbers.push_back({"initial_nonzero", double(t.initial_nonzero)});
  }
  d.tables = {stair, learn};
  d.notes = {
      fd_max == 0 ? std::string("Between its jumps the staircase is flat: the finite difference is 0 at every x above, "
                                "so a model whose weights pass through round() gets no gradient at all.")
                  : str("The largest finite difference above is ", fd_max, ": an x sits next to a jump."),
      str("Without STE the gradient reaching W is ", sci(d.number("none_gradient")), " and no weight moves (largest "
          "change ", sci(d.number("none_moved")), "; ", d.number("initial_nonzero"), " initial weights round to a "
          "nonzero value): ", fixed(100 * d.number("none_accuracy"), 2), " %. With plain STE the same model reaches ",
          fixed(100 * d.number("plain_accuracy"), 2), " %, with clipped STE ", fixed(100 * d.number("clipped_accuracy"), 2),
          " %."),
      str("Plain STE keeps pushing the weights the grid clamps (", fixed(100 * d.number("plain_outside"), 2),
          " % of them): the farthest ends ", fixed(d.number("plain_drift"), 3), " past its clamp threshold; clipped "
          "STE stops the gradient of a clamped weight, and its farthest is ", fixed(d.number("clipped_drift"), 3),
          " past.")};
  Plot p{"the 2-bit staircase round(x / 0.5) * 0.5, clamped to [-1, 0.5]", "x", "quantized x", false, false, true,
         {}};
  PlotSeries s{"fake_quant(x)", {}, {}, "lines"};
  for (int i = -300; i <= 300; ++i) {
    const float x = float(i) / 200.f;
    s.points.emplace_back(x, fake_quant_values(Tensor::from({1}, {x}), qp, spec).values()[0]);
  }
  p.series = {s};
  d.plots.push_back({"demo-ste", p});
  return d;
}

}  // namespace crayon
