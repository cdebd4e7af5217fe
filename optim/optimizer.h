#pragma once
// Optimizer: updates a list of parameters (Variables) from their gradients. It knows no
// layer: the caller passes whatever Variables it wants trained (DESIGN.md, "optim").
//
// Per-parameter state (momentum, Adam's moments) lives in vectors aligned with params_,
// one Tensor per parameter, undefined until that parameter's first update. Updates are
// plain loops over float buffers under NoGradGuard: the optimizer is not differentiated.
//
// Checkpoints: state() names every tensor ("step", "step.3", "momentum.3", "exp_avg.3",
// "exp_avg_sq.3", where 3 is the index in the parameter list) and load_state() restores
// them, so a resumed run continues bit for bit. Hyper-parameters (lr, betas, ...) are not
// state: the caller rebuilds the optimizer with them and sets lr from its schedule.
//
// Low-precision updates (DESIGN.md, idea 7) are optim/weight_grid.h, applied after step()
// so that every optimizer can take them.
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"
#include "core/variable.h"

namespace crayon {

// Throws std::invalid_argument, naming `who` and the index, for an undefined or non-float32
// parameter or one listed twice.
void check_parameter_list(const std::vector<Variable>& params, const char* who);

using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

class Optimizer {
 public:
  // Throws std::invalid_argument on an undefined or repeated parameter, a non-float
  // parameter, or a negative / non-finite lr.
  Optimizer(std::vector<Variable> params, float lr);
  virtual ~Optimizer() = default;
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;

  // One update of every parameter that has a gradient; the others are skipped (their
  // state is left as it is). Counts one step either way.
  virtual void step();
  void zero_grad();  // drops every parameter's gradient

  float lr() const { return lr_; }
  void set_lr(float lr);
  int64_t steps() const { return steps_; }  // step() calls so far
  const std::vector<Variable>& params() const { return params_; }

  // "step": int32 (1,), the number of step() calls; "step.i": int32 (1,), the number of
  // updates parameter i received (absent if none); then each defined buffer of each
  // per-parameter state kind, "kind.i", float32 with parameter i's shape. The tensors are
  // copies.
  NamedTensors state() const;
  // Replaces the whole state with the given one (a buffer not listed starts afresh).
  // Everything is validated before anything changes: an unknown or repeated name, an
  // index out of range, a wrong dtype or shape, or a missing "step" throws
  // std::invalid_argument naming the entry (and the expected and found shapes).
  void load_state(const NamedTensors& state);

 protected:
  // Update parameter i in place: w and g hold n floats. Called by step() under
  // NoGradGuard after updates(i) was incremented (so it is 1 on the first update).
  virtual void update(size_t i, float* w, const float* g, int64_t n) = 0;

  // Declare a kind of per-parameter state, e.g. ("momentum", &momentum_): one Tensor per
  // parameter (the vector is sized here), float32 of the parameter's shape, undefined
  // until first needed. Called from a subclass constructor; the vector is a member of
  // the subclass and outlives every use (optimizers are neither copied nor moved).
  void add_state_kind(const char* name, std::vector<Tensor>* buffers);

  // A zero-filled buffer for parameter i, created the first time it is asked for.
  Tensor& buffer(std::vector<Tensor>& buffers, size_t i);
  int64_t updates(size_t i) const { return updates_[i]; }

  std::vector<Variable> params_;

 private:
  float lr_;
  int64_t steps_ = 0;
  std::vector<int64_t> updates_;  // per parameter: updates received so far
  std::vector<std::pair<const char*, std::vector<Tensor>*>> kinds_;
};

}  // namespace crayon
