#include "core/replicas.h"

namespace crayon {

namespace {
// Per thread: the thread that runs the step sets and reads them.
thread_local Replicas* g_active = nullptr;
thread_local BatchShard g_shard;
}  // namespace

Replicas* active_replicas() { return g_active; }

ShardDraws shard_draws(const std::vector<int64_t>& shape) {
  if (g_shard.global == 0 || shape.empty() || shape[0] != g_shard.rows) return {};
  int64_t per_row = 1;
  for (size_t d = 1; d < shape.size(); ++d) per_row *= shape[d];
  return {uint64_t(g_shard.begin * per_row), uint64_t((g_shard.global - g_shard.begin - g_shard.rows) * per_row)};
}

ReplicaScope::ReplicaScope(Replicas* r, BatchShard shard) : previous_(g_active), previous_shard_(g_shard) {
  g_active = r;
  g_shard = r ? shard : BatchShard{};
}

ReplicaScope::~ReplicaScope() {
  g_active = previous_;
  g_shard = previous_shard_;
}

}  // namespace crayon
