#pragma once
#include "core/ops_conv.h"
#include "nn/init.h"
#include "nn/module.h"

namespace crayon {

// x: (B, C_in, H, W), weight: (C_out, C_in, KH, KW), bias: (C_out,) -> (B, C_out, OH, OW)
class Conv2d : public Module {
 public:
  Conv2d(int64_t in_channels, int64_t out_channels, int kernel_h, int kernel_w, Conv2dParams p, bool bias, Rng& rng,
         Init init = Init::pytorch);
  Variable forward(const Variable& x) override;
  std::string spec() const override;
  int64_t in_channels() const { return in_; }
  int64_t out_channels() const { return out_; }
  int kernel_h() const { return kh_; }
  int kernel_w() const { return kw_; }
  const Conv2dParams& params() const { return p_; }
  bool has_bias() const { return bias_; }

 private:
  int64_t in_, out_;
  int kh_, kw_;
  Conv2dParams p_;
  bool bias_;
};

}  // namespace crayon
