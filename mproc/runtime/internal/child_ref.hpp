// A stable address for a supervised child: forwards every message to the child's current
// incarnation, keeping sender and request id, so replies go straight back to the asker.
// While the child is down, requests are answered with errc::not_running and other messages
// are dropped and counted.
#pragma once

#include <string>

#include <caf/actor.hpp>
#include <caf/allowed_unsafe_message_type.hpp>
#include <caf/fwd.hpp>

namespace mproc::detail {

// From the supervisor: the incarnation to forward to (invalid: down). A type of this
// process, never on the wire: the reference is handed out, and with an atom any holder could
// have pointed it elsewhere (every message and request diverted) or at itself (a loop).
struct child_current {
  caf::actor actor;
};

caf::actor spawn_child_ref(caf::actor_system& sys, std::string id);

} // namespace mproc::detail

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(mproc::detail::child_current)
