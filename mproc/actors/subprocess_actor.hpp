// A program that is not an mproc node, as an actor: its output lines arrive as messages,
// its end as the actor's end, so it can be monitored and supervised like any child — a
// supervisor can restart an external daemon.
//
//   namespace sp = mproc::subprocess;
//   auto cmd = sp::spawn_actor(node, {"sh", "-c", "echo hi; exit 3"}, listener);
//   // listener gets (sp::stdout_atom, "hi"), then a monitor's down message whose reason
//   // is process_exited with exit code 3 (exit_code_of); none after an exit status 0.
//
//   mproc::supervisor sup{node, {}, {sp::supervised("web", {"my-daemon", "--port", "80"})}};
//
// Lines are sent without their newline; a line longer than max_line_bytes is cut into
// pieces of that size. Without a listener the program writes to this process's stdout and
// stderr. An exit message (a supervisor stopping it, send_exit) sends the program SIGTERM
// and the actor ends once the program has; a kill, or the node's end, kills the program.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include <caf/actor.hpp>
#include <caf/atom.hpp>

#include "mproc/runtime/supervisor.hpp"

namespace mproc {
class node;
}

namespace mproc::subprocess {

// (stdout_atom, std::string line), (stderr_atom, std::string line): to the listener.
using stdout_atom = caf::atom_constant<caf::atom("stdout")>;
using stderr_atom = caf::atom_constant<caf::atom("stderr")>;

inline constexpr std::size_t max_line_bytes = std::size_t{1} << 20;

// Starts argv (as popen does) under a new actor in this process. Throws mproc::error
// spawn_failed for a program that cannot start, naming it.
caf::actor spawn_actor(node& owner, std::vector<std::string> argv, caf::actor listener = {});

// A child_spec (in_process) that runs argv under such an actor.
child_spec supervised(std::string id, std::vector<std::string> argv, caf::actor listener = {});

// The registered actor name (MPROC_ACTOR), taking (vec<str> argv, actor listener).
const char* actor_name();

} // namespace mproc::subprocess
