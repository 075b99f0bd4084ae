// The queue actor: stores items, hands them to consumers in batches, and takes back what a
// consumer held when its process died. Delivery guarantee (docs/queue.md): at least once;
// an item is delivered again only if the consumer holding it ended without acknowledging it.
#include "mproc/actors/queue_server.hpp"

#include <deque>
#include <map>
#include <unordered_map>
#include <unordered_set>

#include <caf/event_based_actor.hpp>
#include <caf/stateful_actor.hpp>

#include "mproc/actors/queue_batch.hpp"
#include "mproc/actors/queue_protocol.hpp"
#include "mproc/runtime/errors.hpp"
#include "mproc/runtime/inspect.hpp"
#include "mproc/runtime/message_types.hpp"
#include "mproc/runtime/node.hpp"

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

const item_batch& items_of(const caf::message& batch) {
  return batch.get_as<item_batch>(0);
}

// Items [next, end) of a batch message: the queue stores the batches as they came, so an
// item costs no allocation of its own here.
struct stored_run {
  caf::message batch;  // one item_batch
  std::size_t next;
  std::size_t end;
};

// What a consumer was handed and has not acknowledged, oldest first: the batches as they
// were sent. A batch's message is shared with the reply (CAF messages are reference-counted,
// copied only when written), so holding items costs no copy of them.
struct held_items {
  std::deque<caf::message> batches;  // each one item_batch, as sent
  std::size_t acknowledged = 0;      // of the oldest batch
  std::size_t count = 0;             // items held in all
};

struct queue_state {
  queue_config config;
  bool closed = false;
  std::deque<stored_run> items;
  std::size_t count = 0;  // the runs' items: kept so that has_room and gets need not walk them
  std::unordered_map<caf::actor_addr, held_items> held;
  std::deque<waiting_get> getters;
  std::deque<waiting_put> putters;  // FIFO, so a large batch is not starved by small ones
  std::uint64_t unfinished = 0;     // put but not task_done (JoinableQueue)
  std::vector<caf::response_promise> joiners;
  std::unordered_set<caf::actor_addr> monitored;    // one monitor, so one down, per agent
  std::unordered_set<caf::actor_addr> producers;    // agents that put, until they leave or end
  std::uint64_t accepted = 0;     // items ever accepted from producers
  std::uint64_t redelivered = 0;  // items given back because their consumer died holding them
  std::uint64_t taken = 0;        // items ever handed to consumers (redelivered ones again)
  inspect_source source;          // what `mproc ps` shows of this queue, while it lives

  static inline const char* name = "mproc.queue";
};

using queue_actor = caf::stateful_actor<queue_state>;

caf::error closed_error() {
  return make_error(errc::closed, "the queue is closed");
}

bool has_room(const queue_state& s, std::size_t n) {
  // A batch never exceeds maxsize (the client caps it), so it fits once enough is taken.
  return s.config.maxsize == 0 || s.count + n <= s.config.maxsize || s.count == 0;
}

// How many of the first `n` stored items (there are as many) fit in one batch of
// max_batch_bytes, at least one, and their bytes.
std::pair<std::size_t, std::size_t> fitting(const queue_state& s, std::size_t n) {
  std::size_t items = 0;
  std::size_t bytes = 0;
  for (auto i = s.items.begin(); items < n && i != s.items.end(); ++i) {
    const auto& b = items_of(i->batch);
    for (auto k = i->next; k < i->end && items < n; ++k) {
      auto size = b.bytes_between(k, k + 1);
      if (items > 0 && bytes + size > max_batch_bytes)
        return {items, bytes};
      bytes += size;
      ++items;
    }
  }
  return {items, bytes};
}

// Up to `n` stored items (at least one is there) as one batch message: a stored batch of
// exactly the items taken goes out as it came; others are copied together, one copy per
// stored batch.
caf::message take_batch(queue_state& s, std::size_t n) {
  auto [count, bytes] = fitting(s, n);
  auto& front = s.items.front();
  if (front.next == 0 && front.end == count && items_of(front.batch).size() == count) {
    auto reply = std::move(front.batch);
    s.items.pop_front();
    s.count -= count;
    s.taken += count;
    return reply;
  }
  item_batch out;
  out.reserve(count, bytes);
  for (auto left = count; left > 0;) {
    auto& run = s.items.front();
    auto k = std::min(left, run.end - run.next);
    out.append(items_of(run.batch), run.next, run.next + k);
    run.next += k;
    left -= k;
    if (run.next == run.end)
      s.items.pop_front();
  }
  s.count -= count;
  s.taken += count;
  return caf::make_message(std::move(out));
}

// The reply to a get: up to `max` items, held for `who` until it acknowledges them.
caf::message take(queue_actor* self, const caf::actor_addr& who, std::uint32_t max) {
  auto& s = self->state;
  auto n = std::min<std::size_t>(std::max<std::uint32_t>(max, 1), s.count);
  auto reply = take_batch(s, n);
  auto& held = s.held[who];
  held.batches.push_back(reply);
  held.count += items_of(reply).size();
  return reply;
}

void admit_putters(queue_actor* self);

// Serves waiting consumers, then lets blocked producers in, until neither can move.
void rebalance(queue_actor* self) {
  auto& s = self->state;
  for (;;) {
    bool moved = false;
    while (!s.getters.empty() && s.count != 0) {
      auto g = std::move(s.getters.front());
      s.getters.pop_front();
      g.rp.deliver(take(self, g.who, g.max));
      moved = true;
    }
    auto before = s.putters.size();
    admit_putters(self);
    if (!moved && s.putters.size() == before)
      break;
  }
  if (s.closed && s.count == 0) {
    for (auto& g : s.getters)
      g.rp.deliver(closed_error());
    s.getters.clear();
  }
}

void accept(queue_actor* self, item_batch& batch) {
  auto& s = self->state;
  auto n = batch.size();
  if (n == 0)
    return;
  s.unfinished += n;
  s.accepted += n;
  s.count += n;
  s.items.push_back({caf::make_message(std::move(batch)), 0, n});
}

void admit_putters(queue_actor* self) {
  auto& s = self->state;
  while (!s.putters.empty() && has_room(s, s.putters.front().items.size())) {
    auto p = std::move(s.putters.front());
    s.putters.pop_front();
    accept(self, p.items);
    p.rp.deliver(caf::unit);
  }
}

// `done` items of `who`'s oldest held ones are finished.
void acknowledge(queue_actor* self, const caf::actor_addr& who, std::uint64_t done) {
  auto i = self->state.held.find(who);
  if (i == self->state.held.end())
    return;
  auto& held = i->second;
  done = std::min<std::uint64_t>(done, held.count);
  held.count -= done;
  while (done > 0) {
    auto left = items_of(held.batches.front()).size() - held.acknowledged;
    if (done < left) {
      held.acknowledged += done;
      return;
    }
    done -= left;
    held.batches.pop_front();
    held.acknowledged = 0;
  }
}

void monitor_once(queue_actor* self, const caf::actor_addr& who) {
  if (self->state.monitored.insert(who).second)
    self->monitor(who);
}

// First contact with a consumer: watch it, so what it holds comes back if it dies.
void watch(queue_actor* self, const caf::actor_addr& who) {
  self->state.held.try_emplace(who);
  monitor_once(self, who);
}

// Puts what `held` holds back at the front: older than everything still queued. The
// batches are shared, not copied: one may still be on its way to the consumer that left,
// and nobody writes a batch once it is stored.
void give_back(queue_actor* self, held_items& held) {
  auto& s = self->state;
  for (auto i = held.batches.size(); i-- > 0;) {
    auto from = i == 0 ? held.acknowledged : 0;
    auto end = items_of(held.batches[i]).size();
    if (from < end)
      s.items.push_front({held.batches[i], from, end});
  }
  s.count += held.count;
  held = held_items{};
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
  for (auto& rp : s.joiners)
    rp.deliver(gone);
  s.getters.clear();
  s.putters.clear();
  s.joiners.clear();
  self->quit(std::move(reason));
}

// The node is ending (it sends user_shutdown to what it kept alive) or someone killed the
// queue: every waiting call is answered, so nobody waits for a queue that is gone.
void on_exit(queue_actor* self, caf::exit_msg& m) {
  end_queue(self, std::move(m.reason));
}

void on_down(queue_actor* self, const caf::down_msg& down) {
  auto& s = self->state;
  s.monitored.erase(down.source);
  s.producers.erase(down.source);
  if (auto i = s.held.find(down.source); i != s.held.end()) {
    s.redelivered += i->second.count;
    give_back(self, i->second);
    s.held.erase(i);
  }
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

// What `mproc ps` shows of a queue; the report asks the actor, so it reads nothing shared.
value inspect_queue(const queue_state& s) {
  std::uint64_t held = 0;
  for (const auto& [who, h] : s.held)
    held += h.count;
  return value::map_t{{"size", s.count},
                      {"maxsize", s.config.maxsize},
                      {"held", held},
                      {"producers", s.producers.size()},
                      {"consumers", s.held.size()},
                      {"waiting_gets", s.getters.size()},
                      {"waiting_puts", s.putters.size()},
                      {"accepted", s.accepted},
                      {"taken", s.taken},
                      {"redelivered", s.redelivered},
                      {"closed", s.closed}};
}

inspect_source make_source(queue_actor* self) {
  return inspect_source::of_actor("queue", caf::actor_cast<caf::actor_addr>(self),
                                  caf::make_message(q_inspect_atom::value));
}

caf::behavior queue_server(queue_actor* self, queue_config config) {
  self->state.config = config;
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
      if (!s.putters.empty() || !has_room(s, batch.size())) {
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
      if (!s.putters.empty() || !has_room(s, batch.size()))
        return make_error(errc::full, "the queue is full");
      accept(self, batch);
      rebalance(self);
      return caf::unit;
    },
    [=](q_get_atom, std::uint32_t max, std::uint64_t done) -> caf::result<caf::message> {
      auto who = sender();
      watch(self, who);
      acknowledge(self, who, done);
      auto& s = self->state;
      if (s.count != 0) {
        auto batch = take(self, who, max);
        admit_putters(self);
        return batch;
      }
      if (s.closed)
        return closed_error();
      auto rp = self->make_response_promise();
      s.getters.push_back({who, max, rp});
      return rp;
    },
    [=](q_getnow_atom, std::uint32_t max, std::uint64_t done) -> caf::result<caf::message> {
      auto who = sender();
      watch(self, who);
      acknowledge(self, who, done);
      auto& s = self->state;
      if (s.count == 0)
        return s.closed ? closed_error() : make_error(errc::empty, "the queue is empty");
      auto batch = take(self, who, max);
      admit_putters(self);
      return batch;
    },
    [=](q_cancel_atom) { forget_getter(self, sender()); },
    // A consumer leaves: `done` of its oldest items are finished, everything else it was
    // handed goes back (also what is still on its way to it: the queue knows what it sent,
    // so nothing depends on what the consumer had received when it left).
    [=](q_leave_atom, std::uint64_t done) {
      auto who = sender();
      self->state.producers.erase(who);
      acknowledge(self, who, done);
      forget_getter(self, who);
      if (auto i = self->state.held.find(who); i != self->state.held.end()) {
        give_back(self, i->second);
        self->state.held.erase(i);
      }
      rebalance(self);
      return caf::unit;
    },
    [=](q_size_atom) {
      auto& s = self->state;
      return caf::make_message(static_cast<std::uint64_t>(s.count),
                               static_cast<std::uint64_t>(s.config.maxsize), s.closed);
    },
    [=](q_stats_atom) {
      auto& s = self->state;
      std::uint64_t unacknowledged = 0;
      for (const auto& [who, held] : s.held)
        unacknowledged += held.count;
      return caf::make_message(static_cast<std::uint64_t>(s.count), s.accepted,
                               s.redelivered, unacknowledged);
    },
    [=](q_inspect_atom) { return inspect_queue(self->state); },
    [=](q_close_atom) { close_queue(self); },
    [=](q_done_atom, std::uint64_t n) -> caf::result<void> {
      auto& s = self->state;
      if (n > s.unfinished)
        return make_error(errc::bad_arguments, "task_done() called more times than items were put");
      s.unfinished -= n;
      if (s.unfinished == 0) {
        for (auto& rp : s.joiners)
          rp.deliver(caf::unit);
        s.joiners.clear();
      }
      return caf::unit;
    },
    [=](q_join_atom) -> caf::result<void> {
      auto& s = self->state;
      if (s.unfinished == 0)
        return caf::unit;
      auto rp = self->make_response_promise();
      s.joiners.push_back(rp);
      return rp;
    },
  };
}

} // namespace

caf::actor spawn_queue_server(caf::actor_system& sys, queue_config config) {
  return sys.spawn(queue_server, config);
}

} // namespace mproc::detail
