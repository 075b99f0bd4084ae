// What `mproc ps` shows of a process beyond its processes and links: its queues, pools and
// supervisors. Each is an inspect_source, registered for as long as the object lives and
// asked for its report only when someone inspects the node (nothing on the hot path).
//
//   mproc::inspect_source src{"queue", [actor] { return ask_queue(actor); }};
//
// A report is called on the node's inspecting thread, never on a loop thread, so it may make
// a blocking request to its actor (with a short timeout); it must not touch the actor's state
// directly. It returns a map (or nil to be left out).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <sys/types.h>

#include "mproc/serialization/value.hpp"

namespace mproc {

class inspect_source {
public:
  using report_fn = std::function<value()>;

  inspect_source() = default;
  // Registers `report` under `kind` ("queue", "pool", "supervisor").
  inspect_source(std::string kind, report_fn report);
  // Unregisters. A report already running finishes on its own copy of `report`, so capture
  // weak references (caf::actor_addr) to what it asks.
  ~inspect_source();
  inspect_source(inspect_source&& other) noexcept;
  inspect_source& operator=(inspect_source&& other) noexcept;

private:
  std::uint64_t id_ = 0;
};

// Where root nodes put their introspection sockets: $XDG_RUNTIME_DIR/mproc when that is set,
// else /tmp/mproc-<uid>. One socket per root, named <pid>.sock.
std::string inspect_directory();

// The pids of this user's root nodes that answer on a socket there, in pid order.
std::vector<pid_t> inspect_roots();

// The snapshot of the root node `pid`, its children's nodes included: what `mproc ps --json`
// prints (docs/introspection.md). Throws mproc::error: unreachable when no such root answers
// here, timeout, bad_message.
value inspect_node(pid_t pid, std::chrono::milliseconds timeout = std::chrono::seconds{10});

} // namespace mproc
