// The manager actor: holds the shared objects of one Manager and runs their proxies'
// operations, one at a time (actors/manager_protocol.hpp).
#pragma once

namespace mproc::detail {

// The name the manager actor is registered under (MPROC_ACTOR-style), for spawning it in
// this process or a child.
const char* manager_actor_name();

} // namespace mproc::detail
