#include "core/rng.h"

#include <cmath>

namespace crayon {

namespace {
uint64_t splitmix64(uint64_t& x) {
  uint64_t z = (x += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}
uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
}  // namespace

Rng::Rng(uint64_t seed) {
  for (auto& w : s_) w = splitmix64(seed);
}

uint64_t Rng::next_u64() {
  const uint64_t result = rotl(s_[1] * 5, 7) * 9;
  const uint64_t t = s_[1] << 17;
  s_[2] ^= s_[0];
  s_[3] ^= s_[1];
  s_[1] ^= s_[2];
  s_[0] ^= s_[3];
  s_[2] ^= t;
  s_[3] = rotl(s_[3], 45);
  return result;
}

float Rng::uniform() { return float(next_u64() >> 40) * 0x1.0p-24f; }

void Rng::discard(uint64_t n) {
  for (uint64_t i = 0; i < n; ++i) next_u64();
}

float Rng::uniform(float lo, float hi) { return lo + (hi - lo) * uniform(); }

float Rng::normal() {
  // u1 in (0, 1] so log(u1) is finite.
  const double u1 = double((next_u64() >> 11) + 1) * 0x1.0p-53;
  const double u2 = double(next_u64() >> 11) * 0x1.0p-53;
  const double r = std::sqrt(-2.0 * std::log(u1));
  const double t = 2.0 * M_PI * u2;
  return float(r * std::cos(t));
}

uint64_t Rng::below(uint64_t n) {
  // Lemire's multiply-shift with rejection keeps every value equally likely.
  __uint128_t m = __uint128_t(next_u64()) * n;
  uint64_t low = uint64_t(m);
  if (low < n) {
    const uint64_t threshold = -n % n;
    while (low < threshold) {
      m = __uint128_t(next_u64()) * n;
      low = uint64_t(m);
    }
  }
  return uint64_t(m >> 64);
}

}  // namespace crayon
