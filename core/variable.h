#pragma once
// Reverse-mode autograd on a dynamic graph (DESIGN.md, "core").
//
// A Variable is a shallow handle (copying it shares the node) to a value, its gradient,
// the Variables it was computed from, and one backward function. An op is a free function
// that computes its value and returns make_result(value, inputs, backward), where the
// backward receives d(loss)/d(output) and accumulates d(loss)/d(input) into each input
// with add_grad() or grad_accumulator(). Gradients always accumulate.
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace crayon {

class Variable;
using BackwardFn = std::function<void(const Tensor& dout, std::vector<Variable>& inputs)>;

class Variable {
 public:
  Variable() = default;
  // A leaf; parameters are created with requires_grad = true.
  explicit Variable(Tensor value, bool requires_grad = false);

  bool defined() const { return node_ != nullptr; }
  const Tensor& value() const;
  Tensor& value();
  const Shape& shape() const { return value().shape(); }
  int64_t size(int dim) const { return value().size(dim); }
  int64_t numel() const { return value().numel(); }
  int ndim() const { return value().ndim(); }
  float item() const { return value().item(); }

  bool requires_grad() const;
  void set_requires_grad(bool on);
  bool is_leaf() const;

  // The accumulated gradient; undefined until a backward pass reaches this Variable.
  const Tensor& grad() const;
  bool has_grad() const;
  void zero_grad();  // drops the gradient (the next backward starts from zero)
  // grad += g (shapes must match).
  void add_grad(const Tensor& g);
  // The same for a gradient made for this call alone (storage nobody else holds): the first
  // one is adopted, not copied.
  void add_fresh_grad(Tensor g);
  // For kernels that accumulate in place (e.g. sgemm with beta): returns the gradient
  // buffer and sets *beta to 0 if the buffer is new (zero-filled), 1 if it holds a
  // gradient to add to. Writing with out = beta*out + new keeps accumulation exact.
  Tensor& grad_accumulator(float* beta);
  // The same for kernels that overwrite every element when beta = 0 (cblas_sgemm's C, a
  // copy): a new buffer is left uninitialized, sparing a memset that cost ~8 % of an MLP step.
  Tensor& grad_for_gemm(float* beta);

  // Back-propagate from this Variable. Without an argument it must hold one element and
  // the seed is 1. The graph is freed afterwards unless retain_graph is set.
  void backward(bool retain_graph = false);
  void backward(const Tensor& seed, bool retain_graph = false);

  Variable detach() const;  // same value (shared storage), no history

  const char* op_name() const;
  const std::vector<Variable>& inputs() const;

  // Identity of the shared node (two handles to one Variable compare equal).
  bool same(const Variable& other) const { return node_ == other.node_; }

  friend Variable make_result(Tensor value, std::vector<Variable> inputs, BackwardFn backward,
                              const char* op_name);

 private:
  struct Node;
  std::shared_ptr<Node> node_;
};

// Wrap an op's result. If grad mode is on and any input requires a gradient, the result
// records its inputs and backward function; otherwise it is a plain constant.
Variable make_result(Tensor value, std::vector<Variable> inputs, BackwardFn backward,
                     const char* op_name);

// Gradient recording switch (thread-local), e.g. for evaluation and optimizer updates.
bool grad_enabled();
class NoGradGuard {
 public:
  NoGradGuard();
  ~NoGradGuard();
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool previous_;
};

}  // namespace crayon
