#pragma once
// Stochastic gradient descent with momentum (dampening 0), Nesterov and L2 weight decay,
// exactly torch.optim.SGD's documented algorithm
// (https://pytorch.org/docs/stable/generated/torch.optim.SGD.html), per element:
//
//   g = grad + wd * w                      (weight decay)
//   b = mu * b + g    (b = g on the first update of this parameter)
//   g = nesterov ? g + mu * b : b          (when mu != 0)
//   w = w - lr * g
//
// weight_decay here is the optimizer's own L2 term; a Regularizer (optim/regularizer.h)
// adds its prior's gradient to grad before step() and is independent of it.
#include "optim/optimizer.h"

namespace crayon {

struct SgdOptions {
  float lr = 0.01f;
  float momentum = 0.f;
  bool nesterov = false;  // requires momentum > 0
  float weight_decay = 0.f;
};

class SGD : public Optimizer {
 public:
  // e.g. SGD(params, {.lr = 0.1f, .momentum = 0.9f, .nesterov = true}).
  // Throws std::invalid_argument on a negative or non-finite hyper-parameter, or Nesterov
  // without momentum.
  SGD(std::vector<Variable> params, SgdOptions options);
  const SgdOptions& options() const { return options_; }

 protected:
  void update(size_t i, float* w, const float* g, int64_t n) override;

 private:
  SgdOptions options_;
  std::vector<Tensor> momentum_;  // "momentum.i": the buffer b
};

}  // namespace crayon
