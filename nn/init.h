#pragma once
// Seeded weight initialization. fan_in / fan_out of a weight (O, I, KH, KW) are I*KH*KW
// and O*KH*KW. Formulas: He et al. 2015 (Kaiming), Glorot & Bengio 2010 (Xavier).
#include <string>

#include "core/rng.h"
#include "core/tensor.h"

namespace crayon {

enum class Init {
  pytorch,          // U(-b, b), b = 1 / sqrt(fan_in): PyTorch's default for Linear and Conv2d
                    // (kaiming_uniform_ with a = sqrt(5)); crayon's default too
  kaiming_uniform,  // U(-b, b), b = sqrt(6 / fan_in): He init for ReLU nets
  kaiming_normal,   // N(0, 2 / fan_in)
  xavier_uniform,   // U(-b, b), b = sqrt(6 / (fan_in + fan_out))
  xavier_normal,    // N(0, 2 / (fan_in + fan_out))
};
Init parse_init(const std::string& name);
bool is_init_scheme(const std::string& name);  // a name parse_init() accepts  // "pytorch", "kaiming-uniform", ...; throws naming the value

Tensor init_weight(const Shape& shape, Init kind, Rng& rng);
// PyTorch's default bias: U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
Tensor init_bias(int64_t n, int64_t fan_in, Rng& rng);

}  // namespace crayon
