#pragma once
// The sum of term(0) .. term(n-1) for a plane of floats: sixteen float lanes (the compiler
// vectorizes them), the lanes and the tail added in double. The reductions over a batch's
// planes (batch norm's statistics, a convolution's bias gradient) add the planes in double.
// sum_squares keeps every term in double, in eight lanes: a norm over a whole model's
// gradients stays exact to double rounding and still vectorizes (one double chain would
// wait on each addition's latency).
#include <cstdint>
#include <span>

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

inline double sum_squares(std::span<const float> v) {
  constexpr size_t kLanes = 8;
  double lane[kLanes] = {};
  size_t j = 0;
  for (; j + kLanes <= v.size(); j += kLanes)
    for (size_t l = 0; l < kLanes; ++l) lane[l] += double(v[j + l]) * double(v[j + l]);
  double s = 0;
  for (; j < v.size(); ++j) s += double(v[j]) * double(v[j]);
  for (double x : lane) s += x;
  return s;
}

}  // namespace crayon
