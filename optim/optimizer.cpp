#include "optim/optimizer.h"

#include <charconv>
#include <cmath>
#include <set>
#include <stdexcept>

#include "core/check.h"

namespace crayon {

namespace {

void check_lr(float lr) {
  if (!std::isfinite(lr) || lr < 0.f)
    throw std::invalid_argument(str("optimizer: lr must be finite and >= 0, got ", lr));
}

// A count ("step", "step.i") is stored as an int32 tensor of shape (1,).
int64_t read_count(const std::string& name, const Tensor& t) {
  if (t.dtype() != DType::i32 || t.shape() != Shape{1})
    throw std::invalid_argument(str("optimizer state \"", name, "\": expected int32 (1,), got ",
                                    dtype_name(t.dtype()), " ", shape_str(t.shape())));
  const int32_t v = t.data_as<int32_t>()[0];
  if (v < 0)
    throw std::invalid_argument(str("optimizer state \"", name, "\": expected a count >= 0, got ", v));
  return v;
}

Tensor count_tensor(int64_t v) {
  if (v > INT32_MAX) throw std::overflow_error(str("optimizer: step count ", v, " exceeds int32"));
  const int32_t x = int32_t(v);
  return Tensor::from_i32({1}, std::span<const int32_t>(&x, 1));
}

}  // namespace

void check_parameter_list(const std::vector<Variable>& params, const char* who) {
  for (size_t i = 0; i < params.size(); ++i) {
    if (!params[i].defined())
      throw std::invalid_argument(str(who, ": parameter ", i, " is an undefined Variable"));
    if (params[i].value().dtype() != DType::f32)
      throw std::invalid_argument(str(who, ": parameter ", i, " must be float32, got ",
                                      dtype_name(params[i].value().dtype())));
    for (size_t j = 0; j < i; ++j)
      if (params[j].same(params[i]))
        throw std::invalid_argument(str(who, ": parameters ", j, " and ", i,
                                        " are the same Variable (it would be updated twice)"));
  }
}

Optimizer::Optimizer(std::vector<Variable> params, float lr)
    : params_(std::move(params)), lr_(lr), updates_(params_.size(), 0) {
  check_lr(lr);
  check_parameter_list(params_, "optimizer");
}

void Optimizer::set_lr(float lr) {
  check_lr(lr);
  lr_ = lr;
}

void Optimizer::add_state_kind(const char* name, std::vector<Tensor>* buffers) {
  buffers->assign(params_.size(), Tensor());
  kinds_.push_back({name, buffers});
}

Tensor& Optimizer::buffer(std::vector<Tensor>& buffers, size_t i) {
  if (!buffers[i].defined()) buffers[i] = Tensor::zeros(params_[i].shape());
  return buffers[i];
}

void Optimizer::step() {
  NoGradGuard no_grad;
  ++steps_;
  for (size_t i = 0; i < params_.size(); ++i) {
    Variable& p = params_[i];
    if (!p.has_grad()) continue;
    CRAYON_CHECK(p.grad().numel() == p.numel(), "gradient of parameter ", i, " has shape ",
                 shape_str(p.grad().shape()), ", value ", shape_str(p.shape()));
    ++updates_[i];
    update(i, p.value().data(), p.grad().data(), p.numel());
  }
}

void Optimizer::zero_grad() {
  for (Variable& p : params_) p.zero_grad();
}

NamedTensors Optimizer::state() const {
  NamedTensors out;
  out.emplace_back("step", count_tensor(steps_));
  for (size_t i = 0; i < params_.size(); ++i)
    if (updates_[i] > 0) out.emplace_back(str("step.", i), count_tensor(updates_[i]));
  for (const auto& [name, buffers] : kinds_)
    for (size_t i = 0; i < params_.size(); ++i)
      if ((*buffers)[i].defined()) out.emplace_back(str(name, ".", i), (*buffers)[i].clone());
  return out;
}

void Optimizer::load_state(const NamedTensors& state) {
  const size_t n = params_.size();
  auto expected_names = [&] {
    std::string s = "\"step\", \"step.i\"";
    for (const auto& kind : kinds_) s += str(", \"", kind.first, ".i\"");
    return str(s, " with i in [0, ", n, ")");
  };

  // Build the new state aside, so that a bad entry leaves the optimizer untouched.
  int64_t steps = -1;
  std::vector<int64_t> updates(n, 0);
  std::vector<std::vector<Tensor>> buffers(kinds_.size(), std::vector<Tensor>(n));
  std::set<std::string> seen;
  for (const auto& [name, t] : state) {
    if (!seen.insert(name).second)
      throw std::invalid_argument(str("optimizer state: entry \"", name, "\" appears twice"));
    if (!t.defined())
      throw std::invalid_argument(str("optimizer state \"", name, "\": undefined tensor"));
    if (name == "step") {
      steps = read_count(name, t);
      continue;
    }
    const size_t dot = name.rfind('.');
    size_t i = 0;
    const char* first = name.data() + (dot == std::string::npos ? name.size() : dot + 1);
    const char* last = name.data() + name.size();
    const auto [end, ec] = std::from_chars(first, last, i);
    if (dot == std::string::npos || first == last || ec != std::errc() || end != last || i >= n)
      throw std::invalid_argument(str("optimizer state: unknown entry \"", name, "\" (expected ",
                                      expected_names(), ")"));
    const std::string kind = name.substr(0, dot);
    if (kind == "step") {
      updates[i] = read_count(name, t);
      continue;
    }
    size_t k = 0;
    while (k < kinds_.size() && kind != kinds_[k].first) ++k;
    if (k == kinds_.size())
      throw std::invalid_argument(str("optimizer state: unknown entry \"", name, "\" (expected ",
                                      expected_names(), ")"));
    if (t.dtype() != DType::f32 || t.shape() != params_[i].shape())
      throw std::invalid_argument(str("optimizer state \"", name, "\": expected float32 ",
                                      shape_str(params_[i].shape()), ", got ",
                                      dtype_name(t.dtype()), " ", shape_str(t.shape())));
    buffers[k][i] = t.clone();
  }
  if (steps < 0)
    throw std::invalid_argument("optimizer state: missing entry \"step\"");
  for (size_t i = 0; i < n; ++i) {
    if (updates[i] > steps)
      throw std::invalid_argument(str("optimizer state \"step.", i, "\": ", updates[i],
                                      " updates exceed \"step\" = ", steps));
    // Every update made every buffer of the parameter, and only an update makes one: a
    // buffer missing or extra would silently restart or invent its state.
    for (size_t k = 0; k < kinds_.size(); ++k)
      if (buffers[k][i].defined() != (updates[i] > 0))
        throw std::invalid_argument(str("optimizer state: ", updates[i] > 0 ? "missing" : "unexpected", " entry \"",
                                        kinds_[k].first, ".", i, "\" (parameter ", i, " has ", updates[i],
                                        " updates)"));
  }

  steps_ = steps;
  updates_ = std::move(updates);
  for (size_t k = 0; k < kinds_.size(); ++k) *kinds_[k].second = std::move(buffers[k]);
}

}  // namespace crayon
