#pragma once
// Data-parallel replicas: the processes that each run the same training step on their own
// shard of one global batch (`mpirun -np N crayon train`). Gradients are summed across them
// after backward (optim/data_parallel.h); the few ops whose forward depends on the whole
// batch reduce their per-shard partial results here during the step, so every replica
// computes what a single process would on the global batch:
//   batch norm in training   per-channel sums for the mean and the variance, and in backward
//                            sum(dy), sum(dy * xhat) (a synchronized batch norm, as PyTorch's
//                            SyncBatchNorm)
//   fake-quant observers     the batch's min and max (minmax, ema), so every replica
//                            quantizes with the same scales
// Random draws per element (dropout masks, stochastic rounding of activations) are made for
// the whole global batch by every replica, each keeping its own rows' (BatchShard below), so
// they too are what one process draws.
//
// The transport (MPI) lives in apps/world.h; core only sees this interface. Reductions are
// collective: every replica makes the same calls in the same order, which holds because
// each runs the same graph. Outside a ReplicaScope (evaluation, a single process) nothing is
// reduced.
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace crayon {

class Replicas {
 public:
  virtual ~Replicas() = default;
  virtual int rank() const = 0;  // 0 .. size() - 1
  virtual int size() const = 0;
  // Element-wise over all replicas, in place; every replica receives the same result.
  virtual void sum(std::span<double> v) = 0;
  virtual void sum(std::span<float> v) = 0;
  virtual void min(std::span<float> v) = 0;
  virtual void max(std::span<float> v) = 0;
  // Replica `root`'s bytes to every replica.
  virtual void broadcast(std::span<std::byte> bytes, int root) = 0;
};

// This replica's rows of the step's global batch: [begin, begin + rows) of `global`.
struct BatchShard {
  int64_t begin = 0, rows = 0, global = 0;  // global == 0: no shard (alone)
};

// The replicas of the step this thread computes, or nullptr when alone (or outside a step).
// Per thread: ops ask on the thread that calls them, not inside their parallel loops.
Replicas* active_replicas();

// For a module that draws one random number per element of a batch tensor of this shape
// (rows first): how many draws of the global batch come before this shard's rows and after
// them, to be skipped so the generator draws and ends as one process's would. Zero alone,
// and for a tensor that is not the step's shard (its rows != the shard's rows).
struct ShardDraws {
  uint64_t before = 0, after = 0;
};
ShardDraws shard_draws(const std::vector<int64_t>& shape);

// Makes r (with this replica's shard of the batch) the active replicas for its lifetime
// (nullptr: none); restores the previous.
class ReplicaScope {
 public:
  explicit ReplicaScope(Replicas* r, BatchShard shard = {});
  ~ReplicaScope();
  ReplicaScope(const ReplicaScope&) = delete;
  ReplicaScope& operator=(const ReplicaScope&) = delete;

 private:
  Replicas* previous_;
  BatchShard previous_shard_;
};

}  // namespace crayon
