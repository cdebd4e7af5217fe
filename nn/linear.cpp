#include "nn/linear.h"

#include <stdexcept>

#include "core/check.h"
#include "core/ops.h"

namespace crayon {

Linear::Linear(int64_t in_features, int64_t out_features, bool bias, Rng& rng, Init init)
    : in_(in_features), out_(out_features), bias_(bias) {
  if (in_ < 1 || out_ < 1)
    throw std::invalid_argument(str("linear: features must be >= 1, got in=", in_, " out=", out_));
  register_parameter("weight", init_weight({out_, in_}, init, rng));
  if (bias_) register_parameter("bias", init_bias(out_, in_, rng));
}

Variable Linear::forward(const Variable& x) {
  if (x.ndim() != 2 || x.size(1) != in_)
    throw std::invalid_argument(str(spec(), ": expected input (B, ", in_, "), got ", shape_str(x.shape())));
  Variable y = matmul(x, param(0), false, true);
  return bias_ ? y + param(1) : y;
}

std::string Linear::spec() const { return str("linear(", out_, bias_ ? "" : ",bias=0", ")"); }

}  // namespace crayon
