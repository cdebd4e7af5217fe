#include "core/replicas.h"

namespace crayon {

namespace {
Replicas* g_active = nullptr;  // set and read by the thread that runs the step
}  // namespace

Replicas* active_replicas() { return g_active; }

ReplicaScope::ReplicaScope(Replicas* r) : previous_(g_active) { g_active = r; }
ReplicaScope::~ReplicaScope() { g_active = previous_; }

}  // namespace crayon
