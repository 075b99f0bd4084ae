// The queue actor: stores items (queue_store.hpp), hands them to consumers in batches, makes
// producers and consumers wait while the queue is full or empty, and takes back what a
// consumer held when its process died. Delivery guarantee (docs/queue.md): at least once;
// an item is delivered again only if the consumer holding it ended without acknowledging it.
#include "mproc/actors/queue_server.hpp"

#include <algorithm>
#include <chrono>
#include <deque>
#include <map>
#include <unordered_set>
#include <vector>

#include <caf/allowed_unsafe_message_type.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/stateful_actor.hpp>

#include "mproc/actors/addr_hash.hpp"
#include "mproc/actors/queue_batch.hpp"
#include "mproc/actors/queue_protocol.hpp"
#include "mproc/actors/queue_recall.hpp"
#include "mproc/actors/queue_store.hpp"
#include "mproc/runtime/deadline.hpp"
#include "mproc/runtime/errors.hpp"
#include "mproc/runtime/inspect.hpp"
#include "mproc/runtime/message_types.hpp"
#include "mproc/runtime/node.hpp"

namespace mproc::detail {
namespace {
// The queue's timers, from the queue to itself. Types of this process, never on the wire: a
// peer could otherwise spoof the queue itself as sender (a frame's `from` may name any actor
// of this node) and end a join(timeout) early, or start recall rounds.
struct join_due {
  std::uint64_t id;  // the joiner whose time passed
};
struct recall_due {
  std::uint64_t token;
};
} // namespace
} // namespace mproc::detail

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(mproc::detail::join_due)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(mproc::detail::recall_due)

namespace mproc::detail {

namespace {

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

caf::error closed_error() {
  return make_error(errc::closed, "the queue is closed");
}

void admit_putters(queue_actor* self);

// Whether a closed queue has nothing more for `who`: nothing waits, and no other consumer
// holds items that would come back if it died (a consumer told `closed` stops asking, so
// items given back after that would stay here for nobody).
bool drained_for(const queue_state& s, const caf::actor_addr& who) {
  return s.store.size() == 0 && s.store.held() == s.store.held_by(who);
}

void rebalance(queue_actor* self);

// Up to `max` waiting items for `who` (there is one).
caf::message hand_out(queue_actor* self, const caf::actor_addr& who, std::uint32_t max) {
  self->state.recall.fed(who);
  return self->state.store.take(who, max);
}

// `who` acknowledged `done` of its oldest items; on a closed queue that may be the last
// of them anyone held, which ends the gets still waiting.
void acknowledge(queue_actor* self, const caf::actor_addr& who, std::uint64_t done) {
  self->state.store.acknowledge(who, done);
  if (self->state.closed && done != 0)
    rebalance(self);
}

// The same for the items named by `spans` (first and n of each, queue_acks.hpp).
void acknowledge(queue_actor* self, const caf::actor_addr& who,
                 const std::vector<std::uint64_t>& spans) {
  std::uint64_t done = 0;
  for (std::size_t i = 0; i + 1 < spans.size(); i += 2)
    done += self->state.store.acknowledge(who, spans[i], spans[i + 1]);
  if (self->state.closed && done != 0)
    rebalance(self);
}

// Serves waiting consumers, then lets blocked producers in, until neither can move.
void rebalance(queue_actor* self) {
  auto& s = self->state;
  for (;;) {
    bool moved = false;
    while (!s.getters.empty() && s.store.size() != 0) {
      // Shared among the gets waiting (items put by one batch, sentinels among them, go to
      // all of them), each at most what it asked for.
      auto share = (s.store.size() + s.getters.size() - 1) / s.getters.size();
      auto g = std::move(s.getters.front());
      s.getters.pop_front();
      auto max = static_cast<std::uint32_t>(std::min<std::size_t>(g.max, share));
      g.rp.deliver(hand_out(self, g.who, max));
      moved = true;
    }
    auto before = s.putters.size();
    admit_putters(self);
    if (!moved && s.putters.size() == before)
      break;
  }
  if (s.closed && s.store.size() == 0)
    std::erase_if(s.getters, [&](waiting_get& g) {
      if (!drained_for(s, g.who))
        return false;
      g.rp.deliver(closed_error());
      return true;
    });
}

void accept(queue_actor* self, item_batch& batch) {
  self->state.unfinished += batch.size();
  self->state.store.put(std::move(batch));
}

void admit_putters(queue_actor* self) {
  auto& s = self->state;
  while (!s.putters.empty() && s.store.has_room(s.putters.front().items.size())) {
    auto p = std::move(s.putters.front());
    s.putters.pop_front();
    accept(self, p.items);
    p.rp.deliver(caf::unit);
  }
}

void monitor_once(queue_actor* self, const caf::actor_addr& who) {
  if (who && self->state.monitored.insert(who).second)
    self->monitor(who);
}

// Items go only to a sender the queue can watch: what an anonymous get took would be held
// by nobody, never acknowledged nor given back at an end that never comes (and a parked
// one would keep the queue recalling for it). A put may come from nobody: it takes nothing.
caf::error anonymous_taker() {
  return make_error(errc::bad_message,
                    "a get needs a sender the queue can watch (an anonymous one would strand "
                    "the items it took)");
}

// First contact with a consumer (the sender of a get): watch it, so what it holds comes back
// if it dies.
caf::actor_addr first_contact(queue_actor* self) {
  auto who = caf::actor_cast<caf::actor_addr>(self->current_sender());
  self->state.store.add_consumer(who);
  monitor_once(self, who);
  return who;
}

void arm_recall(queue_actor* self, std::chrono::milliseconds in, std::uint64_t token) {
  self->delayed_send(self, in, recall_due{token});
}

// `who` asked and found nothing: if it stays so, the holders are asked (recall_round).
void hungry(queue_actor* self, const caf::actor_addr& who) {
  if (auto token = self->state.recall.hungry(who, queue_recall::clock::now()))
    arm_recall(self, queue_recall::first, *token);
}

// Items a consumer fetched ahead and has not taken (its process stopped getting, sentinels
// among them) would wait for it while another consumer finds nothing: each holder that is
// not hungry itself is asked to give back what it did not take (queue_agent.cpp).
void recall_round(queue_actor* self, std::uint64_t token) {
  auto& s = self->state;
  auto waiting = [&](const caf::actor_addr& who) {
    return std::any_of(s.getters.begin(), s.getters.end(),
                       [&](const waiting_get& g) { return g.who == who; });
  };
  auto r = s.recall.fire(token, queue_recall::clock::now(), waiting);
  if (r.recall)
    for (const auto& who : s.store.holders())
      if (!s.recall.is_hungry(who))
        if (auto holder = caf::actor_cast<caf::actor>(who))
          self->send(holder, q_recall_atom::value);
  if (r.again)
    arm_recall(self, *r.again, r.token);
}

// A get that does not wait, get_nowait()'s or a prefetch. (It does not make `who` hungry:
// a prefetch comes from a consumer with work in hand.)
caf::result<caf::message> get_now(queue_actor* self, const caf::actor_addr& who,
                                  std::uint32_t max) {
  auto& s = self->state;
  if (s.store.size() == 0)
    return s.closed && drained_for(s, who) ? closed_error()
                                           : make_error(errc::empty, "the queue is empty");
  auto batch = hand_out(self, who, max);
  admit_putters(self);
  return batch;
}

// A get: up to `max` items at once, else it waits (or `closed` once nothing can come).
caf::result<caf::message> get_waiting(queue_actor* self, const caf::actor_addr& who,
                                      std::uint32_t max) {
  auto& s = self->state;
  if (s.store.size() != 0 || (s.closed && drained_for(s, who)))
    return get_now(self, who, max);
  auto rp = self->make_response_promise();
  s.getters.push_back({who, max, rp});
  hungry(self, who);
  return rp;
}

void forget_getter(queue_actor* self, const caf::actor_addr& who) {
  auto& g = self->state.getters;
  for (auto i = g.begin(); i != g.end();)
    if (i->who == who) {
      // "empty" ends the wait without saying anything about the queue's state.
      i->rp.deliver(make_error(errc::empty, "no longer waiting"));
      i = g.erase(i);
    } else {
      ++i;
    }
}

void close_queue(queue_actor* self);

// Ends the queue, answering every call still waiting (a dropped promise would leave its
// caller waiting forever: CAF 0.17 has no broken-promise error).
void end_queue(queue_actor* self, caf::error reason) {
  auto& s = self->state;
  auto gone = make_error(errc::closed, "the queue has ended");
  for (auto& g : s.getters)
    g.rp.deliver(gone);
  for (auto& p : s.putters)
    p.rp.deliver(gone);
  for (auto& [id, rp] : s.joiners)
    rp.deliver(gone);
  s.getters.clear();
  s.putters.clear();
  s.joiners.clear();
  self->quit(std::move(reason));
}

// The node is ending (it sends user_shutdown to what it kept alive) or someone killed the
// queue: every waiting call is answered, so nobody waits for a queue that is gone. A normal
// exit (what a linked actor's normal end sends, or anyone's, from any peer) is no request to
// end, as for an actor without the handler.
void on_exit(queue_actor* self, caf::exit_msg& m) {
  if (m.reason)
    end_queue(self, std::move(m.reason));
}

void on_down(queue_actor* self, const caf::down_msg& down) {
  auto& s = self->state;
  s.monitored.erase(down.source);
  s.producers.erase(down.source);
  s.redelivered += s.store.give_back(down.source);
  s.recall.fed(down.source);
  forget_getter(self, down.source);
  // A batch its putter will never hear about: never accepted, it goes with its process, as
  // Python's unflushed items do. Its promise also holds this queue: kept, a queue nobody
  // else holds any more would never end, nor the node that waits for it.
  auto before = s.putters.size();
  std::erase_if(s.putters, [&](const waiting_put& p) { return p.who == down.source; });
  if (s.putters.size() != before)
    admit_putters(self);
  rebalance(self);
}

void close_queue(queue_actor* self) {
  auto& s = self->state;
  s.closed = true;
  for (auto& p : s.putters)
    p.rp.deliver(closed_error());
  s.putters.clear();
  rebalance(self);
}

// JoinableQueue.task_done, n times.
caf::result<void> finish_tasks(queue_actor* self, std::uint64_t n) {
  auto& s = self->state;
  if (n > s.unfinished)
    return make_error(errc::bad_arguments, "task_done() called more times than items were put");
  s.unfinished -= n;
  if (s.unfinished == 0) {
    for (auto& [id, rp] : s.joiners)
      rp.deliver(caf::unit);
    s.joiners.clear();
  }
  return caf::unit;
}

// JoinableQueue.join: answered once every item put was done, or errc::timeout after
// `timeout` (none: no limit).
caf::result<void> hold_join(queue_actor* self, std::optional<std::chrono::milliseconds> timeout) {
  auto& s = self->state;
  if (s.unfinished == 0)
    return caf::unit;
  auto id = ++s.last_joiner;
  s.joiners.emplace(id, self->make_response_promise());
  if (timeout)
    self->delayed_send(self, *timeout, join_due{id});
  return caf::delegated<void>{};
}

// A get from the current sender (`serve`: get_waiting or get_now), which first acknowledges
// `done` of what it took before (a count, or spans). Items go only to a sender the queue can
// watch (anonymous_taker).
template <class Done, class Serve>
caf::result<caf::message> take(queue_actor* self, std::uint32_t max, const Done& done,
                               Serve serve) {
  if (!self->current_sender())
    return anonymous_taker();
  auto who = first_contact(self);
  acknowledge(self, who, done);
  return serve(self, who, max);
}

// What `mproc ps` shows of a queue; the report asks the actor, so it reads nothing shared.
value inspect_queue(const queue_state& s) {
  return value::map_t{{"size", s.store.size()},
                      {"maxsize", s.store.maxsize()},
                      {"held", s.store.held()},
                      {"producers", s.producers.size()},
                      {"consumers", s.store.consumers()},
                      {"waiting_gets", s.getters.size()},
                      {"waiting_puts", s.putters.size()},
                      {"waiting_joins", s.joiners.size()},
                      {"accepted", s.store.accepted()},
                      {"taken", s.store.taken()},
                      {"redelivered", s.redelivered},
                      {"recalled", s.recalled},
                      {"closed", s.closed}};
}

inspect_source make_source(queue_actor* self) {
  return inspect_source::of_actor("queue", caf::actor_cast<caf::actor_addr>(self),
                                  caf::make_message(q_inspect_atom::value));
}

caf::behavior queue_server(queue_actor* self, queue_config config) {
  self->state.store = queue_store{config.maxsize};
  self->state.source = make_source(self);
  self->set_down_handler([=](caf::down_msg& down) { on_down(self, down); });
  self->set_exit_handler([=](caf::exit_msg& m) { on_exit(self, m); });
  auto sender = [=] { return caf::actor_cast<caf::actor_addr>(self->current_sender()); };
  // A producer is watched from its first put, for `mproc ps` to count the live ones.
  auto producer = [=] {
    auto who = sender();
    if (who && self->state.producers.insert(who).second)
      monitor_once(self, who);
  };
  return {
    [=](q_put_atom, item_batch& batch) -> caf::result<void> {
      auto& s = self->state;
      if (s.closed)
        return closed_error();
      producer();
      if (!s.putters.empty() || !s.store.has_room(batch.size())) {
        auto who = sender();
        monitor_once(self, who);
        auto rp = self->make_response_promise();
        s.putters.push_back({std::move(batch), rp, who});
        return rp;
      }
      accept(self, batch);
      rebalance(self);
      return caf::unit;
    },
    [=](q_putnow_atom, item_batch& batch) -> caf::result<void> {
      auto& s = self->state;
      if (s.closed)
        return closed_error();
      producer();
      if (!s.putters.empty() || !s.store.has_room(batch.size()))
        return make_error(errc::full, "the queue is full");
      accept(self, batch);
      rebalance(self);
      return caf::unit;
    },
    [=](q_get_atom, std::uint32_t max, std::uint64_t done) {
      return take(self, max, done, get_waiting);
    },
    [=](q_get_atom, std::uint32_t max, const std::vector<std::uint64_t>& done) {
      return take(self, max, done, get_waiting);
    },
    [=](q_getnow_atom, std::uint32_t max, std::uint64_t done) {
      return take(self, max, done, get_now);
    },
    [=](q_getnow_atom, std::uint32_t max, const std::vector<std::uint64_t>& done) {
      return take(self, max, done, get_now);
    },
    [=](q_cancel_atom) { forget_getter(self, sender()); },
    // A consumer leaves: `done` of its oldest items are finished, everything else it was
    // handed goes back (also what is still on its way to it: the queue knows what it sent,
    // so nothing depends on what the consumer had received when it left).
    [=](q_leave_atom, std::uint64_t done) {
      auto who = sender();
      self->state.producers.erase(who);
      self->state.store.acknowledge(who, done);
      forget_getter(self, who);
      self->state.store.give_back(who);
      self->state.recall.fed(who);
      rebalance(self);
      return caf::unit;
    },
    // A consumer's agent names the items it finished (queue_acks.hpp).
    [=](q_ack_atom, const std::vector<std::uint64_t>& spans) {
      acknowledge(self, sender(), spans);
    },
    // A consumer gives back items it fetched and did not take, asked by recall().
    [=](q_return_atom, std::uint64_t from, std::uint64_t n) {
      self->state.recalled += self->state.store.take_back(sender(), from, n);
      rebalance(self);
    },
    [=](recall_due& r) { recall_round(self, r.token); },
    [=](q_size_atom) {
      auto& s = self->state;
      return caf::make_message(static_cast<std::uint64_t>(s.store.size()),
                               static_cast<std::uint64_t>(s.store.maxsize()), s.closed);
    },
    [=](q_stats_atom) {
      auto& s = self->state;
      return caf::make_message(static_cast<std::uint64_t>(s.store.size()), s.store.accepted(),
                               s.redelivered, s.store.held());
    },
    [=](q_inspect_atom) { return inspect_queue(self->state); },
    [=](q_close_atom) { close_queue(self); },
    [=](q_done_atom, std::uint64_t n) { return finish_tasks(self, n); },
    // From a consumer's agent: its `done` oldest items are finished, so they are not
    // delivered again if it dies before its next get (nor counted done twice).
    [=](q_done_atom, std::uint64_t n, std::uint64_t done) {
      acknowledge(self, sender(), done);
      return finish_tasks(self, n);
    },
    [=](q_done_atom, std::uint64_t n, const std::vector<std::uint64_t>& done) {
      acknowledge(self, sender(), done);
      return finish_tasks(self, n);
    },
    [=](q_join_atom) { return hold_join(self, std::nullopt); },
    [=](q_join_atom, std::uint64_t timeout_ms) {
      if (timeout_ms >= static_cast<std::uint64_t>(forever_beyond.count()))
        return hold_join(self, std::nullopt);
      return hold_join(self, std::chrono::milliseconds{timeout_ms});
    },
    // The time of a join passed (sent to itself by hold_join).
    [=](join_due& j) {
      auto& s = self->state;
      if (auto i = s.joiners.find(j.id); i != s.joiners.end()) {
        i->second.deliver(make_error(errc::timeout, "tasks are still unfinished"));
        s.joiners.erase(i);
      }
    },
  };
}

} // namespace

caf::actor spawn_queue_server(caf::actor_system& sys, queue_config config) {
  return sys.spawn(queue_server, config);
}

} // namespace mproc::detail
