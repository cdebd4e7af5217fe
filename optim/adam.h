#pragma once
// Adam (Kingma & Ba, 2015) and AdamW (Loshchilov & Hutter, 2019), exactly torch.optim's
// documented algorithms (https://pytorch.org/docs/stable/generated/torch.optim.Adam.html,
// .../torch.optim.AdamW.html), per element, with t the number of updates this parameter
// has received (1 on its first):
//
//   Adam:  g = grad + wd * w               (L2 weight decay, coupled to the gradient)
//   AdamW: w = w - lr * wd * w             (decoupled weight decay), g = grad
//   m = beta1 * m + (1 - beta1) * g
//   v = beta2 * v + (1 - beta2) * g^2
//   m_hat = m / (1 - beta1^t),  v_hat = v / (1 - beta2^t)
//   w = w - lr * m_hat / (sqrt(v_hat) + eps)   (eps after the square root)
//
// As in PyTorch's implementation, the last line is evaluated as
// w -= (lr / (1 - beta1^t)) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps).
#include "optim/optimizer.h"

namespace crayon {

struct AdamOptions {
  float lr = 1e-3f;
  float beta1 = 0.9f;
  float beta2 = 0.999f;
  float eps = 1e-8f;
  float weight_decay = 0.f;
  bool decoupled_weight_decay = false;  // true: AdamW
};

class Adam : public Optimizer {
 public:
  // e.g. Adam(params, {.lr = 1e-3f}). Throws std::invalid_argument on betas outside
  // [0, 1), or a negative or non-finite lr, eps or weight_decay.
  Adam(std::vector<Variable> params, AdamOptions options);
  const AdamOptions& options() const { return options_; }

 protected:
  void update(size_t i, float* w, const float* g, int64_t n) override;

 private:
  AdamOptions options_;
  std::vector<Tensor> exp_avg_;     // "exp_avg.i": m
  std::vector<Tensor> exp_avg_sq_;  // "exp_avg_sq.i": v
};

// Adam with decoupled weight decay; PyTorch's default weight_decay for AdamW is 0.01.
struct AdamWOptions {
  float lr = 1e-3f;
  float beta1 = 0.9f;
  float beta2 = 0.999f;
  float eps = 1e-8f;
  float weight_decay = 0.01f;
};

class AdamW : public Adam {
 public:
  AdamW(std::vector<Variable> params, AdamWOptions o)
      : Adam(std::move(params), {o.lr, o.beta1, o.beta2, o.eps, o.weight_decay, true}) {}
};

}  // namespace crayon
