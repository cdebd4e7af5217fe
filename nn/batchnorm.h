#pragma once
#include "nn/module.h"

namespace crayon {

// Batch normalization over channels of (B, C) or (B, C, H, W) input; see core/ops_norm.h.
// Parameters weight (gamma, init 1) and bias (beta, init 0); buffers running_mean (0)
// and running_var (1).
class BatchNorm : public Module {
 public:
  explicit BatchNorm(int64_t channels, float momentum = 0.1f, float eps = 1e-5f);
  Variable forward(const Variable& x) override;
  std::string spec() const override { return "bn"; }
  int64_t channels() const { return c_; }
  float eps() const { return eps_; }

 private:
  int64_t c_;
  float momentum_, eps_;
};

}  // namespace crayon
