#pragma once
// Module: a layer or a model. Holds named parameters (Variables that train), buffers
// (Tensors that are state but not trained, e.g. running statistics) and child modules;
// names are hierarchical ("features.0.weight"). Layers compose core ops in forward() and
// never write a backward.
//
// A parameter can carry a parametrization: a function applied to it each time forward()
// reads it through param() (PyTorch's torch.nn.utils.parametrize). This is how quant/
// puts fake-quantization on weights without any layer's code mentioning quantization.
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/variable.h"

namespace crayon {

class Module {
 public:
  virtual ~Module() = default;
  virtual Variable forward(const Variable& x) = 0;
  Variable operator()(const Variable& x) { return forward(x); }

  // Type name and constructor arguments, as written in a model spec, e.g. "conv(6,5,pad=2)".
  virtual std::string spec() const = 0;

  std::vector<std::pair<std::string, Variable>> named_parameters() const;
  std::vector<std::pair<std::string, Tensor>> named_buffers() const;  // handles share storage
  std::vector<Variable> parameters() const;
  // The module's own parameter `name` (the raw value, not parametrized), or an undefined
  // Variable if it has none.
  Variable find_parameter(const std::string& name) const;
  const std::vector<std::pair<std::string, std::shared_ptr<Module>>>& children() const { return children_; }

  void train(bool on = true);
  void eval() { train(false); }
  bool is_training() const { return training_; }
  void zero_grad();

  using Parametrization = std::function<Variable(const Variable&)>;
  // Route reads of own parameter `name` through f (replacing any earlier one); an empty
  // f removes it. Throws if the module has no such parameter.
  void set_parametrization(const std::string& name, Parametrization f);
  bool has_parametrization(const std::string& name) const;
  // The parametrization of own parameter `name`, or nullptr if it has none; its
  // target<T>() recovers a function object of type T (quant/ reads a weight's grid so).
  const Parametrization* parametrization(const std::string& name) const;

 protected:
  Variable& register_parameter(std::string name, Tensor value);
  Tensor& register_buffer(std::string name, Tensor value);
  void register_module(std::string name, std::shared_ptr<Module> m);
  void clear_modules() { children_.clear(); }
  // The parameter as forward() should see it (parametrized if one is set).
  Variable param(size_t index) const;
  Tensor buffer(size_t index) const;  // a handle sharing the buffer's storage
  virtual void on_train(bool) {}
  // A module that keeps state outside its buffers (quant/'s FakeQuant keeps its observer
  // live) writes it into them here. named_buffers() calls it first, so whoever reads or
  // writes the buffers through those handles sees, and may replace, the current state.
  virtual void sync_buffers() const {}

 private:
  struct Param {
    std::string name;
    Variable value;
    Parametrization transform;
  };
  std::vector<Param> params_;
  std::vector<std::pair<std::string, Tensor>> buffers_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
  bool training_ = true;
};

// Restores a module's training mode when it goes out of scope (also on an exception).
class TrainModeGuard {
 public:
  explicit TrainModeGuard(Module& m) : m_(m), was_(m.is_training()) {}
  ~TrainModeGuard() { m_.train(was_); }
  TrainModeGuard(const TrainModeGuard&) = delete;
  TrainModeGuard& operator=(const TrainModeGuard&) = delete;

 private:
  Module& m_;
  bool was_;
};

}  // namespace crayon
