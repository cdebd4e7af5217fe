#include "core/replicas.h"

namespace crayon {

namespace {
thread_local Replicas* g_active = nullptr;  // per thread: the thread that runs the step sets and reads it
}  // namespace

Replicas* active_replicas() { return g_active; }

ReplicaScope::ReplicaScope(Replicas* r) : previous_(g_active) { g_active = r; }
ReplicaScope::~ReplicaScope() { g_active = previous_; }

}  // namespace crayon
