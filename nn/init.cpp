#include "nn/init.h"

#include <cmath>
#include <utility>
#include <stdexcept>

#include "core/check.h"

namespace crayon {

namespace {
const std::pair<const char*, Init> kInits[] = {{"pytorch", Init::pytorch},
                                               {"kaiming-uniform", Init::kaiming_uniform},
                                               {"kaiming-normal", Init::kaiming_normal},
                                               {"xavier-uniform", Init::xavier_uniform},
                                               {"xavier-normal", Init::xavier_normal}};
}  // namespace

bool is_init_scheme(const std::string& name) {
  for (const auto& [n, k] : kInits)
    if (name == n) return true;
  return false;
}

Init parse_init(const std::string& name) {
  for (const auto& [n, k] : kInits)
    if (name == n) return k;
  throw std::invalid_argument(
      str("unknown initialization '", name, "' (expected pytorch, kaiming-uniform, kaiming-normal, xavier-uniform or xavier-normal)"));
}

Tensor init_weight(const Shape& shape, Init kind, Rng& rng) {
  CRAYON_CHECK(shape.size() >= 2, "init_weight needs a weight of rank >= 2, got ", shape_str(shape));
  int64_t receptive = 1;
  for (size_t i = 2; i < shape.size(); ++i) receptive *= shape[i];
  const double fan_in = double(shape[1] * receptive), fan_out = double(shape[0] * receptive);
  switch (kind) {
    case Init::pytorch: {
      const float b = float(1.0 / std::sqrt(fan_in));
      return Tensor::uniform(shape, rng, -b, b);
    }
    case Init::kaiming_uniform: {
      const float b = float(std::sqrt(6.0 / fan_in));
      return Tensor::uniform(shape, rng, -b, b);
    }
    case Init::kaiming_normal: return Tensor::randn(shape, rng, 0.f, float(std::sqrt(2.0 / fan_in)));
    case Init::xavier_uniform: {
      const float b = float(std::sqrt(6.0 / (fan_in + fan_out)));
      return Tensor::uniform(shape, rng, -b, b);
    }
    case Init::xavier_normal: return Tensor::randn(shape, rng, 0.f, float(std::sqrt(2.0 / (fan_in + fan_out))));
  }
  return {};
}

Tensor init_bias(int64_t n, int64_t fan_in, Rng& rng) {
  const float b = float(1.0 / std::sqrt(double(std::max<int64_t>(1, fan_in))));
  return Tensor::uniform({n}, rng, -b, b);
}

}  // namespace crayon
