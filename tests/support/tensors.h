#pragma once
// Seeded test inputs, shaped to keep finite differences meaningful: values bounded away
// from kinks, distinct values for max, and a tolerance-aware comparison.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <numeric>
#include <string>
#include <vector>

#include "core/rng.h"
#include "core/tensor.h"

namespace crayon::testing {

inline Tensor uniform(const Shape& s, uint64_t seed, float lo = -1.f, float hi = 1.f) {
  Rng rng(seed);
  return Tensor::uniform(s, rng, lo, hi);
}

inline Tensor normal(const Shape& s, uint64_t seed, float stddev = 1.f) {
  Rng rng(seed);
  return Tensor::randn(s, rng, 0.f, stddev);
}

// Magnitudes in [lo, hi], random signs: no value within lo of zero.
inline Tensor away_from_zero(const Shape& s, uint64_t seed, float lo = 0.1f, float hi = 1.f) {
  Rng rng(seed);
  Tensor t = Tensor::uniform(s, rng, lo, hi);
  for (float& v : t.values())
    if (rng.uniform() < 0.5f) v = -v;
  return t;
}

// A shuffled ladder step * {0, 1, ..., n-1} - offset: all values distinct, `step` apart.
inline Tensor distinct(const Shape& s, uint64_t seed, float step = 0.1f) {
  Rng rng(seed);
  Tensor t = Tensor::empty(s);
  const int64_t n = t.numel();
  std::vector<int64_t> perm(static_cast<size_t>(n));
  std::iota(perm.begin(), perm.end(), 0);
  for (int64_t i = n - 1; i > 0; --i) std::swap(perm[size_t(i)], perm[size_t(rng.below(uint64_t(i + 1)))]);
  for (int64_t i = 0; i < n; ++i) t.data()[i] = step * (float(perm[size_t(i)]) - 0.5f * float(n));
  return t;
}

inline Tensor map(const Tensor& t, float (*f)(float)) {
  Tensor out = t.clone();
  for (float& v : out.values()) v = f(v);
  return out;
}

// Elementwise |got - want| <= tol * scale[i] (scale defaults to max(1, |want|)); reports the
// first few offenders and the worst ratio.
inline void check_close(const Tensor& got, const Tensor& want, double tol, const Tensor& scale = {},
                        const std::string& what = "") {
  INFO(what);
  REQUIRE(got.shape() == want.shape());
  int reported = 0;
  int64_t bad = 0;
  for (int64_t i = 0; i < got.numel(); ++i) {
    const double g = got.data()[i], w = want.data()[i];
    const double s = scale.defined() ? double(scale.data()[i]) : std::max(1.0, std::fabs(w));
    if (!(std::fabs(g - w) <= tol * s)) {
      ++bad;
      if (reported++ < 4)
        FAIL_CHECK(what, " element ", i, " of ", shape_str(got.shape()), ": got ", g, ", want ", w,
                   " (tolerance ", tol, " x ", s, ")");
    }
  }
  CHECK(bad == 0);
}

inline bool bitwise_equal(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() &&
         std::equal(a.values().begin(), a.values().end(), b.values().begin(),
                    [](float x, float y) { return std::memcmp(&x, &y, sizeof x) == 0; });
}

}  // namespace crayon::testing
