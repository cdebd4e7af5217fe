#include "core/rounding.h"

#include <cmath>
#include <stdexcept>
#include <string>

#include "core/check.h"

namespace crayon {

namespace {
float round_half_even(float v) {
  const float r = std::round(v);  // ties away from zero
  // On a tie (fraction exactly .5) the other neighbour is r - sign(v); keep the even one.
  const bool tie = std::fabs(v - std::trunc(v)) == 0.5f;
  if (tie && std::fmod(r, 2.f) != 0.f) return r - std::copysign(1.f, v);
  return r;
}
}  // namespace

float round_value(float v, Rounding mode, Rng* rng) {
  switch (mode) {
    case Rounding::nearest_even: return round_half_even(v);
    case Rounding::nearest_away: return std::round(v);
    case Rounding::stochastic: {
      if (rng == nullptr)
        throw std::invalid_argument("round_value: stochastic rounding needs a random generator (rng is null)");
      const float u = rng->uniform();  // always one draw, see rounding.h
      if (!std::isfinite(v)) return v;
      const float lo = std::floor(v);
      return (u < v - lo) ? lo + 1.f : lo;
    }
  }
  throw std::invalid_argument(str("round_value: unknown rounding mode ", int(mode)));
}

void round_values(std::span<const float> in, std::span<float> out, Rounding mode, Rng* rng) {
  if (in.size() != out.size())
    throw std::invalid_argument(str("round_values: ", in.size(), " inputs but ", out.size(), " outputs"));
  if (mode == Rounding::stochastic && rng == nullptr)
    throw std::invalid_argument("round_values: stochastic rounding needs a random generator (rng is null)");
  for (size_t i = 0; i < in.size(); ++i) out[i] = round_value(in[i], mode, rng);
}

Rounding parse_rounding(std::string_view name) {
  if (name == "nearest" || name == "nearest-even") return Rounding::nearest_even;
  if (name == "nearest-away") return Rounding::nearest_away;
  if (name == "stochastic") return Rounding::stochastic;
  throw std::invalid_argument(str("unknown rounding mode '", std::string(name),
                                  "' (expected nearest, nearest-even, nearest-away or stochastic)"));
}

const char* rounding_name(Rounding mode) {
  switch (mode) {
    case Rounding::nearest_even: return "nearest-even";
    case Rounding::nearest_away: return "nearest-away";
    case Rounding::stochastic: return "stochastic";
  }
  return "?";
}

}  // namespace crayon
