// The queue actor's steps that make callers wait and let them go: gets and puts, the recall
// of items fetched ahead, task_done and join (queue_server_state.hpp).
#include "mproc/actors/queue_server_state.hpp"

#include <algorithm>

#include "mproc/actors/queue_protocol.hpp"
#include "mproc/runtime/errors.hpp"
#include "mproc/runtime/message_types.hpp"

namespace mproc::detail {

namespace {

// Whether a closed queue has nothing more for `who`: nothing waits, and no other consumer
// holds items that would come back if it died (a consumer told `closed` stops asking, so
// items given back after that would stay here for nobody).
bool drained_for(const queue_state& s, const caf::actor_addr& who) {
  return s.store.size() == 0 && s.store.held() == s.store.held_by(who);
}

// Up to `max` waiting items for `who` (there is one).
caf::message hand_out(queue_actor* self, const caf::actor_addr& who, std::uint32_t max) {
  self->state.recall.fed(who);
  return self->state.store.take(who, max);
}

void arm_recall(queue_actor* self, std::chrono::milliseconds in, std::uint64_t token) {
  self->delayed_send(self, in, recall_due{token});
}

// `who` asked and found nothing: if it stays so, the holders are asked (recall_round).
void hungry(queue_actor* self, const caf::actor_addr& who) {
  if (auto token = self->state.recall.hungry(who, queue_recall::clock::now()))
    arm_recall(self, queue_recall::first, *token);
}

} // namespace

caf::error closed_error() {
  return make_error(errc::closed, "the queue is closed");
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

} // namespace mproc::detail
