// The queue actor's state and the steps its handlers (queue_server.cpp) take: gets and puts
// that wait, the recall of what consumers fetched and did not take, task_done and join
// (queue_server_waits.cpp); closing, a member's end and the queue's own
// (queue_server_end.cpp). Private to the queue actor.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <unordered_set>
#include <vector>

#include <caf/allowed_unsafe_message_type.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/response_promise.hpp>
#include <caf/stateful_actor.hpp>

#include "mproc/actors/addr_hash.hpp"
#include "mproc/actors/queue_batch.hpp"
#include "mproc/actors/queue_recall.hpp"
#include "mproc/actors/queue_store.hpp"
#include "mproc/runtime/inspect.hpp"

namespace mproc::detail {

// The queue's timers, from the queue to itself. Types of this process, never on the wire: a
// peer could otherwise spoof the queue itself as sender (a frame's `from` may name any actor
// of this node) and end a join(timeout) early, or start recall rounds.
struct join_due {
  std::uint64_t id;  // the joiner whose time passed
};
struct recall_due {
  std::uint64_t token;
};

} // namespace mproc::detail

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(mproc::detail::join_due)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(mproc::detail::recall_due)

namespace mproc::detail {

struct waiting_get {
  caf::actor_addr who;
  std::uint32_t max;
  caf::response_promise rp;
};

struct waiting_put {
  item_batch items;
  caf::response_promise rp;
  caf::actor_addr who;  // the agent: if it ends, its batch is dropped (see on_down)
};

struct queue_state {
  queue_store store{0};  // the configured one replaces it at spawn
  bool closed = false;
  std::deque<waiting_get> getters;
  std::deque<waiting_put> putters;  // FIFO, so a large batch is not starved by small ones
  std::uint64_t unfinished = 0;     // put but not task_done (JoinableQueue)
  // join()s waiting, by number: one with a timeout is answered errc::timeout when it
  // passes, not kept for ever (a caller looping on join(1s) added one a second).
  std::map<std::uint64_t, caf::response_promise> joiners;
  std::uint64_t last_joiner = 0;
  // One monitor, so one down, per agent; and the agents that put, until they leave or end.
  std::unordered_set<caf::actor_addr, addr_hash> monitored;
  std::unordered_set<caf::actor_addr, addr_hash> producers;
  std::uint64_t redelivered = 0;  // items given back because their consumer died holding them
  queue_recall recall;            // who found nothing, and when to ask the holders
  std::uint64_t recalled = 0;     // items consumers gave back untaken when recalled
  inspect_source source;          // what `mproc ps` shows of this queue, while it lives

  static inline const char* name = "mproc.queue";
};

using queue_actor = caf::stateful_actor<queue_state>;

// Gets and puts (queue_server_waits.cpp).
caf::error closed_error();
void acknowledge(queue_actor* self, const caf::actor_addr& who, std::uint64_t done);
void acknowledge(queue_actor* self, const caf::actor_addr& who,
                 const std::vector<std::uint64_t>& spans);
void rebalance(queue_actor* self);
void accept(queue_actor* self, item_batch& batch);
void admit_putters(queue_actor* self);
void monitor_once(queue_actor* self, const caf::actor_addr& who);
caf::error anonymous_taker();
caf::actor_addr first_contact(queue_actor* self);
caf::result<caf::message> get_now(queue_actor* self, const caf::actor_addr& who,
                                  std::uint32_t max);
caf::result<caf::message> get_waiting(queue_actor* self, const caf::actor_addr& who,
                                      std::uint32_t max);
void forget_getter(queue_actor* self, const caf::actor_addr& who);
// The recall (queue_server_waits.cpp).
void recall_round(queue_actor* self, std::uint64_t token);
// JoinableQueue (queue_server_waits.cpp).
caf::result<void> finish_tasks(queue_actor* self, std::uint64_t n);
caf::result<void> hold_join(queue_actor* self, std::optional<std::chrono::milliseconds> timeout);

// Ends (queue_server_end.cpp).
void close_queue(queue_actor* self);
void on_exit(queue_actor* self, caf::exit_msg& m);
void on_down(queue_actor* self, const caf::down_msg& down);

} // namespace mproc::detail
