// A stable address for a supervised child: forwards every message to the child's current
// incarnation, keeping sender and request id, so replies go straight back to the asker.
// While the child is down, requests are answered with errc::not_running and other messages
// are dropped and counted.
#pragma once

#include <string>

#include <caf/actor.hpp>
#include <caf/atom.hpp>
#include <caf/fwd.hpp>

namespace mproc::detail {

// ("sup_curr", actor) from the supervisor: the incarnation to forward to (invalid: down).
using sup_current_atom = caf::atom_constant<caf::atom("sup_curr")>;

caf::actor spawn_child_ref(caf::actor_system& sys, std::string id);

} // namespace mproc::detail
