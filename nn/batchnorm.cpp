#include "nn/batchnorm.h"

#include "core/ops_norm.h"

namespace crayon {

BatchNorm::BatchNorm(int64_t channels, float momentum, float eps) : c_(channels), momentum_(momentum), eps_(eps) {
  register_parameter("weight", Tensor::ones({c_}));
  register_parameter("bias", Tensor::zeros({c_}));
  register_buffer("running_mean", Tensor::zeros({c_}));
  register_buffer("running_var", Tensor::ones({c_}));
}

Variable BatchNorm::forward(const Variable& x) {
  Tensor rm = buffer(0), rv = buffer(1);
  return batch_norm(x, param(0), param(1), rm, rv, is_training(), momentum_, eps_);
}

}  // namespace crayon
