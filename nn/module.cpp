#include "nn/module.h"

#include <stdexcept>

#include "core/check.h"

namespace crayon {

std::vector<std::pair<std::string, Variable>> Module::named_parameters() const {
  std::vector<std::pair<std::string, Variable>> out;
  for (const auto& p : params_) out.emplace_back(p.name, p.value);
  for (const auto& [cname, child] : children_)
    for (auto& [n, v] : child->named_parameters()) out.emplace_back(cname + "." + n, v);
  return out;
}

std::vector<std::pair<std::string, Tensor>> Module::named_buffers() const {
  sync_buffers();
  std::vector<std::pair<std::string, Tensor>> out = buffers_;
  for (const auto& [cname, child] : children_)
    for (auto& [n, t] : child->named_buffers()) out.emplace_back(cname + "." + n, t);
  return out;
}

Variable Module::find_parameter(const std::string& name) const {
  for (const auto& p : params_)
    if (p.name == name) return p.value;
  return Variable();
}

std::vector<Variable> Module::parameters() const {
  std::vector<Variable> out;
  for (auto& [n, v] : named_parameters()) out.push_back(v);
  return out;
}

void Module::train(bool on) {
  training_ = on;
  on_train(on);
  for (auto& [n, c] : children_) c->train(on);
}

void Module::zero_grad() {
  for (auto& p : params_) p.value.zero_grad();
  for (auto& [n, c] : children_) c->zero_grad();
}

void Module::set_parametrization(const std::string& name, Parametrization f) {
  for (auto& p : params_)
    if (p.name == name) {
      p.transform = std::move(f);
      return;
    }
  throw std::invalid_argument(str(spec(), ": no parameter named '", name, "'"));
}

bool Module::has_parametrization(const std::string& name) const {
  for (const auto& p : params_)
    if (p.name == name) return bool(p.transform);
  return false;
}

const Module::Parametrization* Module::parametrization(const std::string& name) const {
  for (const auto& p : params_)
    if (p.name == name) return p.transform ? &p.transform : nullptr;
  return nullptr;
}

Variable& Module::register_parameter(std::string name, Tensor value) {
  params_.push_back({std::move(name), Variable(std::move(value), true), nullptr});
  return params_.back().value;
}

Tensor& Module::register_buffer(std::string name, Tensor value) {
  buffers_.emplace_back(std::move(name), std::move(value));
  return buffers_.back().second;
}

void Module::register_module(std::string name, std::shared_ptr<Module> m) {
  children_.emplace_back(std::move(name), std::move(m));
}

Variable Module::param(size_t index) const {
  CRAYON_CHECK(index < params_.size(), "parameter index ", index);
  const Param& p = params_[index];
  return p.transform ? p.transform(p.value) : p.value;
}

Tensor Module::buffer(size_t index) const {
  CRAYON_CHECK(index < buffers_.size(), "buffer index ", index);
  return buffers_[index].second;
}

}  // namespace crayon
