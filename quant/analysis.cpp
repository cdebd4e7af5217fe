#include "quant/analysis.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <memory>
#include <set>

#include "core/check.h"
#include "core/lane_sum.h"
#include "core/ops.h"
#include "nn/conv2d.h"
#include "nn/linear.h"
#include "quant/fake_quant.h"
#include "quant/fake_quant_module.h"
#include "quant/prediction_kl.h"
#include "quant/qat.h"

namespace crayon {

double GridError::sqnr_db() const {
  const double noise = error.total_sse();
  if (noise == 0) return std::numeric_limits<double>::infinity();
  return 10.0 * std::log10(signal / noise);
}

double entropy_bits(const std::vector<int32_t>& values) {
  std::map<int32_t, int64_t> counts;
  for (int32_t v : values) ++counts[v];
  const double n = double(values.size());
  double bits = 0;
  for (const auto& [v, c] : counts) bits -= double(c) * std::log2(double(c) / n);
  return bits;
}

namespace {

void add_into(QuantError& a, const QuantError& b) {
  a.count += b.count;
  a.saturated += b.saturated;
  a.saturation_sse += b.saturation_sse;
  a.rounding_sse += b.rounding_sse;
  a.max_saturation_error = std::max(a.max_saturation_error, b.max_saturation_error);
  a.max_rounding_error = std::max(a.max_rounding_error, b.max_rounding_error);
}

int64_t correct(const Tensor& logits, const Tensor& labels) {
  const int64_t n = logits.size(0), c = logits.size(1);
  int64_t ok = 0;
  for (int64_t i = 0; i < n; ++i) {
    const float* z = logits.data() + i * c;
    int64_t t = 0;
    for (int64_t k = 1; k < c; ++k)
      if (z[k] > z[t]) t = k;
    ok += t == labels.data_as<int32_t>()[i];
  }
  return ok;
}

// Rows [begin, begin + n) of a (N, C) tensor, copied.
Tensor rows(const Tensor& t, int64_t begin, int64_t n) {
  const int64_t c = t.size(1);
  return Tensor::from({n, c}, std::span<const float>(t.data() + begin * c, size_t(n * c)));
}

Tightness tightness_of(const BoundPoint& p) {
  Tightness t{p.name};
  std::vector<double> ratios;
  double sb = 0, sm = 0;
  for (size_t i = 0; i < p.bound.size(); ++i) {
    sb += p.bound[i];
    sm += p.measured[i];
    if (p.bound[i] > 0) ratios.push_back(p.measured[i] / p.bound[i]);
  }
  if (!p.bound.empty()) {
    t.mean_bound = sb / double(p.bound.size());
    t.mean_measured = sm / double(p.bound.size());
  }
  if (!ratios.empty()) {
    std::sort(ratios.begin(), ratios.end());
    t.median = ratios[ratios.size() / 2];
    t.p90 = ratios[std::min(ratios.size() - 1, ratios.size() * 9 / 10)];
    t.max = ratios.back();
  }
  return t;
}

KlSummary kl_summary(const PredictionShift& s) {
  KlSummary k;
  k.mean_kl = s.mean_kl;
  k.mean_approx = s.mean_kl_approx;
  const size_t n = s.kl.size();
  double mx = 0, my = 0;
  for (size_t i = 0; i < n; ++i) mx += s.kl[i], my += s.kl_approx[i];
  mx /= double(n), my /= double(n);
  double sxy = 0, sxx = 0, syy = 0;
  for (size_t i = 0; i < n; ++i) {
    sxy += (s.kl[i] - mx) * (s.kl_approx[i] - my);
    sxx += (s.kl[i] - mx) * (s.kl[i] - mx);
    syy += (s.kl_approx[i] - my) * (s.kl_approx[i] - my);
  }
  k.correlation = sxx > 0 && syy > 0 ? sxy / std::sqrt(sxx * syy) : 0;
  std::map<int, std::vector<double>> by_decade;
  for (size_t i = 0; i < n; ++i)
    if (s.kl[i] > 0) by_decade[int(std::floor(std::log10(s.kl[i])))].push_back(std::fabs(s.kl_approx[i] - s.kl[i]) / s.kl[i]);
  for (auto& [d, errs] : by_decade) {
    std::sort(errs.begin(), errs.end());
    k.bins.push_back({std::pow(10.0, d), std::pow(10.0, d + 1), int64_t(errs.size()), errs[errs.size() / 2]});
  }
  return k;
}

// The units of the model: "input" and each conv / linear layer; a FakeQuant belongs to the
// last weight layer before it (its output grid), or to the input.
struct Units {
  std::vector<std::string> names;
  std::vector<int> of_layer;  // per child of the quantized model: its unit, or -1
};

Units units_of(const Sequential& q) {
  Units u{{"input"}, {}};
  int current = 0;
  for (size_t i = 0; i < q.size(); ++i) {
    if (is_weight_layer(q[i])) {
      u.names.push_back(str("layer ", i, " (", q[i].spec(), ")"));
      current = int(u.names.size()) - 1;
    }
    const bool fq = dynamic_cast<const FakeQuant*>(&q[i]) != nullptr;
    u.of_layer.push_back(fq || is_weight_layer(q[i]) ? current : -1);
  }
  return u;
}

// The quantized model with only the units in `on` quantized: their weight layers and
// FakeQuant modules from q, everything else from the float copy f.
std::shared_ptr<Sequential> mixed(const Sequential& q, const Sequential& f, const Units& u, const std::vector<bool>& on) {
  auto m = std::make_shared<Sequential>();
  size_t j = 0;
  for (size_t i = 0; i < q.size(); ++i) {
    const bool fq = dynamic_cast<const FakeQuant*>(&q[i]) != nullptr;
    const int unit = u.of_layer[i];
    if (fq) {
      if (on[size_t(unit)]) m->add(q.at(i));
      continue;
    }
    m->add(unit >= 0 && on[size_t(unit)] ? q.at(i) : f.at(j));
    ++j;
  }
  m->eval();
  return m;
}

}  // namespace

Analysis analyze(Sequential& quantized, const Shape& input_shape, const LabelledBatches& next_batch,
                 const std::function<void()>& restart, bool sensitivity) {
  if (!is_quantized(quantized))
    throw std::invalid_argument("analyze: the model is not prepared for quantization (prepare_qat or calibrate it)");
  NoGradGuard ng;
  quantized.eval();
  std::shared_ptr<Sequential> reference = float_copy(quantized, input_shape);
  reference->eval();
  Analysis a;

  // Weights: their grid errors and entropy bits, from each layer's own fake-quant.
  for (size_t i = 0; i < quantized.size(); ++i) {
    const Module& m = quantized[i];
    const WeightFakeQuant* wfq = weight_fake_quant_of(m);
    if (!wfq) continue;
    const Tensor w = m.named_parameters().at(0).second.value();
    QuantSpec s = wfq->spec;
    s.rounding = Rounding::nearest_even;
    const QParams qp = weight_qparams(w, s);
    const std::string name = str("layer ", i, " (", m.spec(), ")");
    a.weights.push_back({name, decompose_error(w, qp, s), sum_squares(w.values())});
    const Tensor codes = quantize(w, qp, s);
    const std::vector<int32_t> v(codes.data_as<int32_t>(), codes.data_as<int32_t>() + codes.numel());
    WeightBits b{name, codes.numel(), 0, entropy_bits(v)};
    b.distinct = int(std::set<int32_t>(v.begin(), v.end()).size());
    a.weight_bits.push_back(b);
  }

  // One pass: the bound (both paths, every sample), activation grid errors, accuracies.
  int64_t ok_ref = 0, ok_q = 0;
  const GridInput measure_grid = [&](size_t k, const FakeQuant& fq, const Tensor& input) {
    QuantSpec s = fq.quant_spec();
    s.rounding = Rounding::nearest_even;
    if (k == a.activations.size()) a.activations.push_back({});
    add_into(a.activations[k].error, decompose_error(input, fq.qparams(), s));
    a.activations[k].signal += sum_squares(input.values());
  };
  Tensor images, y;
  while (next_batch(images, y)) {
    append(a.bound, propagate_bound(quantized, *reference, images, measure_grid));
    const int64_t n = images.size(0), begin = a.samples;
    ok_ref += correct(rows(a.bound.reference_logits, begin, n), y);
    ok_q += correct(rows(a.bound.quantized_logits, begin, n), y);
    a.samples += n;
  }
  if (a.samples == 0) throw std::invalid_argument("analyze: the batch source yielded no batch");
  for (size_t k = 0; k < a.activations.size(); ++k) a.activations[k].name = a.bound.points[k].name;
  a.reference_accuracy = double(ok_ref) / double(a.samples);
  a.quantized_accuracy = double(ok_q) / double(a.samples);
  for (const BoundPoint& p : a.bound.points) a.tightness.push_back(tightness_of(p));
  a.certified = double(std::count(a.bound.certified.begin(), a.bound.certified.end(), true)) / double(a.samples);
  a.kept = double(std::count(a.bound.kept.begin(), a.bound.kept.end(), true)) / double(a.samples);
  a.kl = kl_summary(prediction_shift(a.bound.reference_logits, a.bound.quantized_logits));
  if (sensitivity)
    a.sensitivity = layer_sensitivity(quantized, input_shape, next_batch, restart, a.bound.reference_logits);
  return a;
}

std::vector<Sensitivity> layer_sensitivity(Sequential& quantized, const Shape& input_shape,
                                           const LabelledBatches& next_batch, const std::function<void()>& restart,
                                           const Tensor& reference_logits) {
  if (!is_quantized(quantized))
    throw std::invalid_argument("layer_sensitivity: the model is not prepared for quantization");
  NoGradGuard ng;
  quantized.eval();
  std::shared_ptr<Sequential> reference = float_copy(quantized, input_shape);
  const Units u = units_of(quantized);
  Tensor images, y;
  auto run = [&](const std::vector<bool>& on, double& accuracy, double& kl) {
    const auto m = mixed(quantized, *reference, u, on);
    restart();
    int64_t ok = 0, seen = 0;
    double kl_sum = 0;
    while (next_batch(images, y)) {
      const Tensor logits = m->forward(Variable(images)).value();
      const int64_t n = logits.size(0);
      CRAYON_CHECK(seen + n <= reference_logits.size(0), "layer_sensitivity: the batch source gave more than the ",
                   reference_logits.size(0), " samples of the reference logits");
      ok += correct(logits, y);
      const PredictionShift s = prediction_shift(rows(reference_logits, seen, n), logits);
      kl_sum += s.mean_kl * double(n);
      seen += n;
    }
    CRAYON_CHECK(seen == reference_logits.size(0), "layer_sensitivity: the batch source gave ", seen,
                 " samples, the reference logits have ", reference_logits.size(0));
    accuracy = double(ok) / double(seen);
    kl = kl_sum / double(seen);
  };
  std::vector<Sensitivity> out;
  for (size_t k = 0; k < u.names.size(); ++k) {
    Sensitivity s{u.names[k]};
    std::vector<bool> only(u.names.size(), false), all_but(u.names.size(), true);
    only[k] = true;
    all_but[k] = false;
    run(only, s.only_accuracy, s.only_kl);
    run(all_but, s.all_but_accuracy, s.all_but_kl);
    out.push_back(s);
  }
  return out;
}

}  // namespace crayon
