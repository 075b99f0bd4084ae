// The supervisor actor's messages (docs/supervision.md lists the public ones).
#pragma once

#include <caf/allowed_unsafe_message_type.hpp>
#include <caf/atom.hpp>
#include <caf/error.hpp>

#include <cstdint>
#include <string>

#include "mproc/runtime/supervisor.hpp"

namespace mproc::detail {

// Public: what supervisor (the class) and other actors send.
using sup_ready_atom = caf::atom_constant<caf::atom("sup_ready")>;      // -> () after start
using sup_child_atom = caf::atom_constant<caf::atom("sup_child")>;      // (id) -> actor
using sup_tree_atom = caf::atom_constant<caf::atom("sup_tree")>;        // -> child_status
using sup_inspect_atom = caf::atom_constant<caf::atom("sup_insp")>;     // -> value, for mproc ps
using sup_add_atom = caf::atom_constant<caf::atom("sup_add")>;          // (spec | args)
using sup_terminate_atom = caf::atom_constant<caf::atom("sup_term")>;   // (id) -> ()
using sup_restart_atom = caf::atom_constant<caf::atom("sup_rest")>;     // (id) -> ()
using sup_delete_atom = caf::atom_constant<caf::atom("sup_del")>;       // (id) -> ()
using sup_stop_atom = caf::atom_constant<caf::atom("sup_stop")>;        // -> () when stopped

// Internal: events the supervisor sends itself (from the node's callbacks on its process
// children, and its shutdown timer). A type of this process, never on the wire: atoms, which
// any actor or peer reaching the supervisor could send, faked a child's start (crashing on
// an in-process child) or exit, or cut a shutdown's grace short.
struct sup_event {
  enum kind { started, exited, kill } what;
  std::string id;
  std::uint64_t inc = 0;  // the child's incarnation
  std::int32_t code = 0;  // exited: the exit code
  caf::error error;       // started: why it could not
};

} // namespace mproc::detail

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(mproc::detail::sup_event)

// A child_spec travels in local messages only (to the supervisor in this node).
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(mproc::child_spec)

// A child_status crosses processes (a nested supervisor's tree); registered in
// supervisor_actor.cpp.
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(mproc::child_status)
template <>
struct mproc::wire::user_type_name<mproc::child_status> {
  static constexpr const char* value = "child_status";
};
