#include "optim/data_parallel.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <span>

namespace crayon {

void sum_gradients(const std::vector<Variable>& params, Replicas& r, GradientSync& sync) {
  const auto t0 = std::chrono::steady_clock::now();
  // Every replica runs the same graph, so the same parameters have gradients everywhere.
  std::vector<Tensor> grads;
  for (const Variable& p : params)
    if (p.has_grad()) grads.push_back(p.grad());  // a handle: writing it writes the parameter's gradient
  sync.floats_per_step = sync.buckets_per_step = 0;
  std::vector<float> bucket;
  // Gradients [first, last) as one bucket: packed, summed, unpacked.
  auto flush = [&](size_t first, size_t last) {
    if (first == last) return;
    bucket.clear();
    for (size_t i = first; i < last; ++i) bucket.insert(bucket.end(), grads[i].values().begin(), grads[i].values().end());
    r.sum(bucket);
    const float* src = bucket.data();
    for (size_t i = first; i < last; ++i) {
      std::span<float> g = grads[i].values();
      std::memcpy(g.data(), src, g.size() * sizeof(float));
      src += g.size();
    }
    sync.floats_per_step += int64_t(bucket.size());
    ++sync.buckets_per_step;
  };
  size_t first = 0;
  int64_t filled = 0;
  for (size_t i = 0; i < grads.size(); ++i) {
    const int64_t n = grads[i].numel();
    if (i > first && filled + n > sync.bucket_floats) {
      flush(first, i);
      first = i;
      filled = 0;
    }
    filled += n;
  }
  flush(first, grads.size());
  sync.seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

void broadcast_tensors(std::vector<Tensor> tensors, Replicas& r, int root) {
  for (Tensor& t : tensors) {
    if (t.numel() == 0) continue;
    std::byte* p = t.dtype() == DType::f32   ? reinterpret_cast<std::byte*>(t.data())
                   : t.dtype() == DType::i32 ? reinterpret_cast<std::byte*>(t.data_as<int32_t>())
                                             : reinterpret_cast<std::byte*>(t.data_as<int8_t>());
    r.broadcast({p, t.nbytes()}, root);
  }
}

}  // namespace crayon
