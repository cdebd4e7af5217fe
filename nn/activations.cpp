#include "nn/activations.h"

#include <array>
#include <cstring>
#include <stdexcept>

#include "core/check.h"
#include "core/replicas.h"

namespace crayon {

Dropout::Dropout(float p, uint64_t seed) : p_(p) {
  if (!(p >= 0.f && p < 1.f)) throw std::invalid_argument(str("dropout: p must be in [0, 1), got ", p));
  Tensor state = Tensor::empty({8}, DType::i32);
  const auto s = Rng(seed).state();
  std::memcpy(state.data_as<int32_t>(), s.data(), sizeof(s));
  register_buffer("rng_state", state);
}

Variable Dropout::forward(const Variable& x) {
  if (!is_training()) return x;
  Tensor state = buffer(0);
  std::array<uint64_t, 4> s;
  std::memcpy(s.data(), state.data_as<int32_t>(), sizeof(s));
  Rng rng;
  rng.set_state(s);
  // One draw per element; a data-parallel replica draws for the whole batch (core/replicas.h).
  const ShardDraws skip = shard_draws(x.shape());
  rng.discard(skip.before);
  Variable y = dropout(x, p_, true, rng);
  rng.discard(skip.after);
  s = rng.state();
  std::memcpy(state.data_as<int32_t>(), s.data(), sizeof(s));
  return y;
}

std::string Dropout::spec() const { return str("dropout(", p_, ")"); }

}  // namespace crayon
