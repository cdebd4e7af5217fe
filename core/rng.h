#pragma once
// A seeded random generator whose whole state is four 64-bit words, so a checkpoint can
// store it and a resumed run draws exactly the numbers an uninterrupted run would.
// xoshiro256** (Blackman & Vigna, 2018), seeded through splitmix64. Normal draws use
// Box-Muller on our own uniforms (one normal per two
// uniforms, nothing cached, so the four words are the whole state), so results do not depend on the standard library.
#include <array>
#include <cstdint>

namespace crayon {

class Rng {
 public:
  explicit Rng(uint64_t seed = 0);
  uint64_t next_u64();
  float uniform();                        // [0, 1), 24 random bits
  float uniform(float lo, float hi);      // [lo, hi)
  float normal();                         // N(0, 1)
  uint64_t below(uint64_t n);             // uniform integer in [0, n), unbiased
  void discard(uint64_t n);               // skips n draws of next_u64 (n uniform() draws)
  std::array<uint64_t, 4> state() const { return s_; }
  void set_state(const std::array<uint64_t, 4>& s) { s_ = s; }

 private:
  std::array<uint64_t, 4> s_{};
};

}  // namespace crayon
