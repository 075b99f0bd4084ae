// The process-local agent of a queue: one actor per process and queue (all its handles
// there share it) that talks to the queue actor in batches both ways (Python's feeder
// thread), and the state it shares with the handles' threads (queue_client.hpp).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <vector>

#include <caf/actor.hpp>
#include <caf/allowed_unsafe_message_type.hpp>
#include <caf/behavior.hpp>
#include <caf/error.hpp>
#include <caf/fwd.hpp>

#include "mproc/actors/queue_acks.hpp"
#include "mproc/actors/queue_batch.hpp"

namespace mproc::detail {

// Items per batch, either way. Large enough that a batch costs far more than a frame's
// overhead; small enough that a consumer that dies returns little (docs/queue.md).
constexpr std::size_t max_batch = 512;

// How many items a process's puts may run ahead of the queue's acceptance: its outbox plus
// the batch in flight. Four batches' worth: while one batch is on its way, puts fill the
// next one instead of waiting for the acknowledgment (producer-consumer, 5 producers and 5
// consumers: 1.34-1.56 M items/s with 512, 1.84-1.98 M with 2,048, alternating runs).
// Items not yet accepted are lost if their process is killed (docs/queue.md): at most this
// many per process.
constexpr std::size_t put_window = 4 * max_batch;

// How long a leaving process waits for the queue to confirm that it took back what the
// process held. Only a queue whose process is alive but stuck takes this long.
constexpr auto leave_timeout = std::chrono::seconds{10};

// What the handle's threads and the agent share. Guarded by `m`.
struct queue_channel {
  std::mutex m;
  std::condition_variable cv;
  // put side
  item_batch outbox;          // put() but not yet sent
  std::size_t in_flight = 0;  // items of the batch the queue has not accepted yet
  std::size_t outbox_limit = put_window;  // on outbox + in_flight: how far a process runs ahead
  bool sending = false;       // a batch is with the queue; the agent sends the next after it
  std::uint64_t accepted = 0; // batches the queue took: progress, for a stalled flush
  std::uint64_t appended = 0;        // items put() ever appended to the outbox
  std::uint64_t settled_puts = 0;    // of those, taken by the queue (or dropped, too large)
  bool has_client = false;    // a client uses it; cleared once that client has left
  caf::error put_error;       // the queue refused (closed) or is gone
  // get side
  std::deque<item_run> inbox; // fetched, not yet taken
  std::size_t inbox_count = 0;  // the runs' items: the prefetch threshold without a walk
  std::uint64_t takes = 0;      // gets that handed items out, and leaves (untake's check)
  std::uint64_t received = 0;   // items the queue handed the current agent (item_run::first)
  bool fetching = false;
  queue_acks acks;            // taken, not yet acknowledged: finished, and each thread's last get
  caf::error get_error;       // closed (after draining) or gone
  // leaving: the queue takes back what this process did not take; the handle stays usable
  // (a new agent takes over), so leaving at exit does not stop a consumer still running.
  std::uint64_t generation = 0;  // of the current agent; a leave retires it
  std::size_t leaves_pending = 0;  // leaves the queue has not answered yet
  // Agents a leave retired that still have puts going out or their leave unanswered. The
  // channel holds them: nothing else need (a dropped handle does not wait for its flush, a
  // node's exports are weak), and an agent nobody holds ends with its answers still due.
  // Each takes itself out when it is done; the exit hook ends those still here.
  std::vector<caf::actor> retiring;
  bool queue_gone = false;       // the queue actor ended: every call fails from now on
};

// From this process's handles to their agent. A type of this process, never on the wire:
// the agent is the sender of every put and get, so the queue's process and its peers can
// reach it, and with atoms they could make it leave (the queue handing back what it holds
// while its items are still taken), count a batch in flight as accepted, or fetch for it.
// (The queue's own q_recall stays an atom: the queue sends it.)
struct agent_call {
  enum kind { flush, fetch, cancel, get_now, leave, task_done } what;
  bool wait = false;                  // fetch: a get waits for it
  queue_acks::spans done;             // leave: the items finished
  std::uint64_t tasks = 0;            // task_done: how many
  queue_acks::thread_key thread = 0;  // task_done: whose
};

// The agent `gen` of `ch`: the queue `q` knows a consumer by this actor, and watches it.
caf::behavior queue_agent(caf::event_based_actor* self, std::shared_ptr<queue_channel> ch,
                          caf::actor q, std::uint64_t gen);

} // namespace mproc::detail

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(mproc::detail::agent_call)
