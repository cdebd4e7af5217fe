#include "nn/conv2d.h"

#include <stdexcept>

#include "core/check.h"

namespace crayon {

Conv2d::Conv2d(int64_t in_channels, int64_t out_channels, int kernel_h, int kernel_w, Conv2dParams p, bool bias,
               Rng& rng, Init init)
    : in_(in_channels), out_(out_channels), kh_(kernel_h), kw_(kernel_w), p_(p), bias_(bias) {
  if (in_ < 1 || out_ < 1 || kh_ < 1 || kw_ < 1 || p.stride_h < 1 || p.stride_w < 1 || p.pad_h < 0 || p.pad_w < 0)
    throw std::invalid_argument(str("conv: invalid configuration ", spec(), " with ", in_, " input channels"));
  register_parameter("weight", init_weight({out_, in_, kh_, kw_}, init, rng));
  if (bias_) register_parameter("bias", init_bias(out_, in_ * kh_ * kw_, rng));
}

Variable Conv2d::forward(const Variable& x) {
  return conv2d(x, param(0), bias_ ? param(1) : Variable(), p_);
}

std::string Conv2d::spec() const {
  std::string s = str("conv(", out_, ",");
  s += kh_ == kw_ ? str(kh_) : str(kh_, "x", kw_);
  if (p_.stride_h != 1 || p_.stride_w != 1)
    s += p_.stride_h == p_.stride_w ? str(",stride=", p_.stride_h) : str(",stride=", p_.stride_h, "x", p_.stride_w);
  if (p_.pad_h != 0 || p_.pad_w != 0)
    s += p_.pad_h == p_.pad_w ? str(",pad=", p_.pad_h) : str(",pad=", p_.pad_h, "x", p_.pad_w);
  if (!bias_) s += ",bias=0";
  return s + ")";
}

}  // namespace crayon
