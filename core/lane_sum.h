#pragma once
// The sum of term(0) .. term(n-1) for a plane of floats: sixteen float lanes (the compiler
// vectorizes them), the lanes and the tail added in double. The reductions over a batch's
// planes (batch norm's statistics, a convolution's bias gradient) add the planes in double.
#include <cstdint>

namespace crayon {

template <class F>
double lane_sum(int64_t n, F term) {
  constexpr int kLanes = 16;
  float lane[kLanes] = {};
  int64_t j = 0;
  for (; j + kLanes <= n; j += kLanes)
    for (int l = 0; l < kLanes; ++l) lane[l] += term(j + l);
  double s = 0;
  for (; j < n; ++j) s += term(j);
  for (float v : lane) s += v;
  return s;
}

}  // namespace crayon
