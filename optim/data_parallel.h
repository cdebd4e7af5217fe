#pragma once
// Synchronous data parallelism over core/replicas.h, the scheme of PyTorch's
// DistributedDataParallel and Horovod: every replica starts from the same model and
// optimizer state, runs forward and backward on its shard of the global batch with its loss
// weighted by shard / global batch size, and the gradients are then summed across the
// replicas, so each one holds the global batch's gradient and steps exactly as the others.
//
// The sum goes in buckets (the gradients copied into one contiguous buffer of at most
// bucket_floats floats, one reduction per bucket rather than one per parameter). It starts
// after backward, not overlapped with it: on one machine the sum is 9 % of a lenet5 step and
// under 1 % of a cifar-cnn step (bench/README.md section 11, with what to expect on a cluster).
#include <cstdint>
#include <vector>

#include "core/replicas.h"
#include "core/tensor.h"
#include "core/variable.h"

namespace crayon {

struct GradientSync {
  int64_t bucket_floats = int64_t(1) << 20;  // 4 MiB buckets
  int64_t floats_per_step = 0;               // filled in by sum_gradients: what the last step sent
  int64_t buckets_per_step = 0;
  double seconds = 0;  // added up over every call: the time spent summing (waiting for peers included)
};

// Sums every parameter's gradient over the replicas, in place. Parameters without a gradient
// are skipped: every replica runs the same graph, so they are the same ones everywhere.
void sum_gradients(const std::vector<Variable>& params, Replicas& r, GradientSync& sync);

// Replica root's tensors (any dtype) copied into every replica's, which must have the same
// shapes: the same starting model everywhere.
void broadcast_tensors(std::vector<Tensor> tensors, Replicas& r, int root = 0);

}  // namespace crayon
