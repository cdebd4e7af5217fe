#include "quant/qat.h"

#include <cstring>
#include <memory>
#include <stdexcept>

#include "core/check.h"
#include "nn/activations.h"
#include "nn/batchnorm.h"
#include "nn/conv2d.h"
#include "nn/linear.h"
#include "nn/pooling.h"
#include "nn/spec.h"
#include "quant/bn_fold.h"

namespace crayon {

bool is_weight_layer(const Module& m) {
  return dynamic_cast<const Linear*>(&m) != nullptr || dynamic_cast<const Conv2d*>(&m) != nullptr;
}

QParams weight_qparams(const Tensor& weight, const QuantSpec& spec) {
  const Ranges r = tensor_ranges(weight, spec.axis);
  return spec.axis < 0 ? choose_qparams(r.min[0], r.max[0], spec) : choose_qparams(r.min, r.max, spec);
}

namespace {

// splitmix64's finalizer: a well-mixed 64-bit function of x.
uint64_t mix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// FNV-1a over the tensor's bytes, started from the seed: the stochastic rounding key.
uint64_t fingerprint(const Tensor& t, uint64_t seed) {
  uint64_t h = 0xcbf29ce484222325ull ^ mix64(seed);
  const auto* p = reinterpret_cast<const unsigned char*>(t.data());
  for (size_t i = 0; i < t.nbytes(); ++i) h = (h ^ p[i]) * 0x100000001b3ull;
  return mix64(h);
}

bool is_activation(const Module& m) {
  return dynamic_cast<const ReLU*>(&m) != nullptr || dynamic_cast<const ReLU6*>(&m) != nullptr;
}
bool is_batchnorm(const Module& m) { return dynamic_cast<const BatchNorm*>(&m) != nullptr; }
// Layers whose output leaves the grid of their input.
bool is_compute(const Module& m) {
  return is_weight_layer(m) || is_batchnorm(m) || dynamic_cast<const AvgPool2d*>(&m) != nullptr;
}

// Every module below root (root included) in depth-first order.
void visit(Module& m, const std::function<void(Module&)>& f) {
  f(m);
  for (const auto& [n, c] : m.children()) visit(*c, f);
}
void visit_const(const Module& m, const std::function<void(const Module&)>& f) {
  f(m);
  for (const auto& [n, c] : m.children()) visit_const(*c, f);
}

}  // namespace

Variable WeightFakeQuant::operator()(const Variable& w) const {
  // w: (C_out, ...) -> same shape, on the grid of weight_qparams(w)
  const QParams qp = weight_qparams(w.value(), spec);
  QuantSpec s = spec;
  if (!owner->is_training()) s.rounding = Rounding::nearest_even;  // what the integer engine stores
  if (s.rounding != Rounding::stochastic) return fake_quant(w, qp, s, ste);
  Rng rng(fingerprint(w.value(), seed));
  return fake_quant(w, qp, s, ste, &rng);
}

Module::Parametrization weight_fake_quant(const Module& layer, const QuantSpec& spec, Ste ste, uint64_t seed) {
  spec.validate();
  return WeightFakeQuant{&layer, spec, ste, seed};
}

const WeightFakeQuant* weight_fake_quant_of(const Module& layer) {
  const Module::Parametrization* p = layer.parametrization("weight");
  return p ? p->target<WeightFakeQuant>() : nullptr;
}

std::vector<std::pair<std::string, FakeQuant*>> fake_quant_modules(const Module& model) {
  std::vector<std::pair<std::string, FakeQuant*>> out;
  std::function<void(const Module&, const std::string&)> walk = [&](const Module& m, const std::string& prefix) {
    for (const auto& [n, c] : m.children()) {
      const std::string name = prefix.empty() ? n : prefix + "." + n;
      if (auto* fq = dynamic_cast<FakeQuant*>(c.get())) out.emplace_back(name, fq);
      walk(*c, name);
    }
  };
  walk(model, "");
  return out;
}

std::vector<std::pair<std::string, QParams>> activation_qparams(const Module& model) {
  std::vector<std::pair<std::string, QParams>> out;
  for (const auto& [name, fq] : fake_quant_modules(model))
    if (fq->observed()) out.emplace_back(name, fq->qparams());
  return out;
}

std::string float_spec(const Sequential& model) {
  std::string s;
  for (const auto& [n, m] : model.children()) {
    if (dynamic_cast<const FakeQuant*>(m.get())) continue;
    if (!s.empty()) s += "-";
    s += m->spec();
  }
  return s;
}

bool is_quantized(const Module& model) {
  bool prepared = !fake_quant_modules(model).empty();
  visit_const(model, [&](const Module& m) { prepared = prepared || (is_weight_layer(m) && m.has_parametrization("weight")); });
  return prepared;
}

std::shared_ptr<Sequential> float_copy(const Sequential& model, const Shape& input) {
  Rng rng(0);  // every value is overwritten
  std::shared_ptr<Sequential> f = build_model(float_spec(model), input, rng);
  size_t j = 0;
  for (const auto& [n, m] : model.children()) {
    if (dynamic_cast<const FakeQuant*>(m.get())) continue;
    const Module& dst = *f->children().at(j++).second;
    const auto src_p = m->named_parameters();
    auto dst_p = dst.named_parameters();
    const auto src_b = m->named_buffers();
    auto dst_b = dst.named_buffers();  // handles sharing the new model's storage
    CRAYON_CHECK(src_p.size() == dst_p.size() && src_b.size() == dst_b.size(), "float_copy: layer ", n, " differs");
    for (size_t i = 0; i < src_p.size(); ++i) dst_p[i].second.value().copy_from(src_p[i].second.value());
    for (size_t i = 0; i < src_b.size(); ++i) dst_b[i].second.copy_from(src_b[i].second);
  }
  f->train(model.is_training());
  return f;
}

void prepare_qat(Sequential& model, const QatConfig& config) {
  validate(config);
  if (is_quantized(model))
    throw std::invalid_argument(str("prepare_qat: the model is already prepared for quantization: ", model.spec()));

  size_t weight_layers = 0;
  visit(model, [&](Module& m) { weight_layers += is_weight_layer(m); });
  if (!config.layer_weight_bits.empty() && config.layer_weight_bits.size() != weight_layers)
    throw std::invalid_argument(str("prepare_qat: layer_weight_bits has ", config.layer_weight_bits.size(),
                                    " widths for a model with ", weight_layers, " conv / linear layers: ", model.spec()));
  if (config.fold_bn) {
    fold_batchnorm(model);
    for (size_t i = 0; i < model.size(); ++i)
      if (is_batchnorm(model[i]))
        throw std::invalid_argument(str("prepare_qat: layer ", i, " (bn) follows no conv or linear, so it cannot be "
                                        "folded (the integer engine has no batch norm); set fold_bn=0 to keep it "
                                        "in float: ", model.spec()));
  }

  Rng seeds(config.seed);  // one seed per quantized tensor, in forward order
  size_t k = 0;
  visit(model, [&](Module& m) {
    if (!is_weight_layer(m)) return;
    QuantSpec spec = config.weight;
    if (!config.layer_weight_bits.empty()) spec.bits = config.layer_weight_bits[k];
    ++k;
    m.set_parametrization("weight", weight_fake_quant(m, spec, config.ste, seeds.next_u64()));
  });

  // Where the activation fake-quants go (positions in the current layer list).
  size_t last_compute = 0;
  bool any_compute = false;
  for (size_t i = 0; i < model.size(); ++i)
    if (is_compute(model[i])) {
      last_compute = i;
      any_compute = true;
    }
  std::vector<size_t> after;  // insert after layer i
  for (size_t i = 0; i < model.size(); ++i) {
    const bool next_keeps = i + 1 < model.size() && (is_batchnorm(model[i + 1]) || is_activation(model[i + 1]));
    if (is_activation(model[i]) || (is_compute(model[i]) && !next_keeps && !(any_compute && i == last_compute)))
      after.push_back(i);
  }
  // Seeds in forward order, the input's first.
  std::vector<uint64_t> fq_seeds(after.size() + 1);
  for (uint64_t& s : fq_seeds) s = seeds.next_u64();
  auto make = [&](uint64_t seed) {
    auto fq = std::make_shared<FakeQuant>(config.act, config.observer, config.warmup_steps, config.ste, seed);
    fq->train(model.is_training());
    return fq;
  };
  // One pass builds the new layer list (inserting one at a time would be quadratic).
  std::vector<std::shared_ptr<Module>> layers{make(fq_seeds[0])};
  layers.reserve(model.size() + after.size() + 1);
  for (size_t i = 0, k = 0; i < model.size(); ++i) {
    layers.push_back(model.at(i));
    if (k < after.size() && after[k] == i) layers.push_back(make(fq_seeds[++k]));
  }
  const bool training = model.is_training();
  model = Sequential(std::move(layers));
  model.train(training);
}

void calibrate(Sequential& model, const std::function<bool(Tensor& batch)>& next_batch, int64_t batches,
               const QatConfig& config) {
  if (batches < 1) throw std::invalid_argument(str("calibrate: batches must be >= 1, got ", batches));
  if (fake_quant_modules(model).empty()) prepare_qat(model, config);
  const auto fqs = fake_quant_modules(model);
  const bool training = model.is_training();
  auto finish = [&] {
    for (const auto& [n, fq] : fqs) fq->set_calibrating(false);
    model.train(training);
  };
  model.eval();
  for (const auto& [n, fq] : fqs) {
    fq->reset();
    fq->set_calibrating(true);
  }
  int64_t seen = 0;
  try {
    NoGradGuard no_grad;
    Tensor batch;
    while (seen < batches && next_batch(batch)) {
      model.forward(Variable(batch));
      ++seen;
    }
  } catch (...) {
    finish();
    throw;
  }
  if (seen == 0) {
    finish();
    throw std::invalid_argument("calibrate: the batch source yielded no batch");
  }
  for (const auto& [n, fq] : fqs) fq->freeze();
  finish();
}

}  // namespace crayon
