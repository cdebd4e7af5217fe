#pragma once
#include "nn/init.h"
#include "nn/module.h"

namespace crayon {

// y = x W^T + b.  x: (B, in), W: (out, in), b: (out,) -> (B, out)
class Linear : public Module {
 public:
  Linear(int64_t in_features, int64_t out_features, bool bias, Rng& rng, Init init = Init::pytorch);
  Variable forward(const Variable& x) override;
  std::string spec() const override;
  int64_t in_features() const { return in_; }
  int64_t out_features() const { return out_; }
  bool has_bias() const { return bias_; }

 private:
  int64_t in_, out_;
  bool bias_;
};

}  // namespace crayon
