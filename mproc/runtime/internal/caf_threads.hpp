// Which threads are CAF's own: its scheduler workers and its clock. Neither may wait for room
// on a full link. A worker that waits stalls every actor it would run, and the clock thread
// fires every delayed message and request timeout of the node. CAF says which thread is which
// only by name (set before its thread hooks run); these hooks remember it per thread.
#pragma once

namespace caf {
class actor_system_config;
}

namespace mproc::detail {

// Before the actor system is made from `config`.
void watch_caf_threads(caf::actor_system_config& config);
// True on a CAF scheduler worker or clock thread of any node of this process.
bool on_caf_scheduler_thread();

} // namespace mproc::detail
