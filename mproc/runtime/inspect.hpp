// What `mproc ps` shows of a process beyond its processes and links: its queues, pools and
// supervisors. Each is an inspect_source, registered for as long as the object lives and
// asked for its report only when someone inspects the node (nothing on the hot path).
//
//   mproc::inspect_source src{"queue", [actor](auto timeout) { return ask(actor, timeout); }};
//
// A report is called on the node's inspecting thread, never on a loop thread, so it may make
// a blocking request to its actor within `timeout`; it must not touch the actor's state
// directly. It returns a map (or nil to be left out).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <sys/types.h>

#include <caf/actor_addr.hpp>
#include <caf/message.hpp>

#include "mproc/serialization/value.hpp"

namespace mproc {

class inspect_source {
public:
  using report_fn = std::function<value(std::chrono::milliseconds timeout)>;

  inspect_source() = default;
  // Registers `report` under `kind` ("queue", "pool", "supervisor").
  inspect_source(std::string kind, report_fn report);
  // A source whose report is the answer (a map) of the actor `who` to `question`, with the
  // actor's id added as "id"; left out once the actor has ended.
  static inspect_source of_actor(std::string kind, const caf::actor_addr& who,
                                 caf::message question);
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

// The pids of this user's root nodes that answer on a socket, in pid order: in
// inspect_directory() and in /tmp/mproc-<uid> (a root started without XDG_RUNTIME_DIR, from
// cron or sudo, is found too). A directory that is not this user's alone is not read.
std::vector<pid_t> inspect_roots();

// The snapshot of the root node `pid`, its children's nodes included: what `mproc ps --json`
// prints (docs/introspection.md). Throws mproc::error: unreachable when no such root answers
// here (or one of another user's), timeout, bad_message.
value inspect_node(pid_t pid, std::chrono::milliseconds timeout = std::chrono::seconds{10});

} // namespace mproc
