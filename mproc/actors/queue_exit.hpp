// A process's queues at its exit: its node's exit hook makes every handle still alive
// leave (what the process took is acknowledged, what it prefetched goes back), then waits
// while the queues keep accepting what the process put, then ends the agents of queues
// that stalled. Python joins its queues' feeder threads at exit the same way, without the
// limit.
#pragma once

#include <chrono>
#include <memory>

#include "mproc/actors/queue_agent.hpp"

namespace mproc::detail {

// How long a leaving process waits for a queue that accepts none of its remaining items
// (full, and nobody taking) before it gives them up. Python would wait forever here.
constexpr auto stalled_flush_limit = std::chrono::seconds{10};

// A handle's side that leaves (queue_client).
class queue_leaver {
public:
  virtual ~queue_leaver() = default;
  // Tells the queue what this process took; with `wait_flush`, after its puts went out.
  virtual void leave(bool wait_flush = true) = 0;
  virtual const std::shared_ptr<queue_channel>& channel() const = 0;
};

// Remembers `client` for this node's exit hook (installed with the first one).
void track_for_exit(const std::shared_ptr<queue_leaver>& client);

// Whether this process's node ran its exit hook for queues already: a handle dropped after
// it is not waited for.
bool exit_settled();

} // namespace mproc::detail
