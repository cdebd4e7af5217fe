#pragma once
#include "core/ops_conv.h"
#include "nn/module.h"

namespace crayon {

class MaxPool2d : public Module {
 public:
  explicit MaxPool2d(Pool2dParams p) : p_(p) {}
  Variable forward(const Variable& x) override { return max_pool2d(x, p_); }
  std::string spec() const override;
  const Pool2dParams& params() const { return p_; }

 private:
  Pool2dParams p_;
};

class AvgPool2d : public Module {
 public:
  explicit AvgPool2d(Pool2dParams p) : p_(p) {}
  Variable forward(const Variable& x) override { return avg_pool2d(x, p_); }
  std::string spec() const override;
  const Pool2dParams& params() const { return p_; }

 private:
  Pool2dParams p_;
};

std::string pool_spec(const char* name, const Pool2dParams& p);

}  // namespace crayon
