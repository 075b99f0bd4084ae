// The manager actor: holds the shared objects of one Manager and runs their proxies'
// operations, one at a time (actors/manager_protocol.hpp).
#pragma once

#include <caf/actor.hpp>
#include <caf/fwd.hpp>

namespace mproc::detail {

// The name the manager actor is registered under (MPROC_ACTOR-style), for spawning it in
// this process or a child.
const char* manager_actor_name();

// The manager actor in this process, on a thread of its own.
caf::actor spawn_local_manager(caf::actor_system& sys);

} // namespace mproc::detail
