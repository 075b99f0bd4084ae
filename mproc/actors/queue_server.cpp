// The queue actor: stores items (queue_store.hpp), hands them to consumers in batches, makes
// producers and consumers wait while the queue is full or empty, and takes back what a
// consumer held when its process died. Delivery guarantee (docs/queue.md): at least once;
// an item is delivered again only if the consumer holding it ended without acknowledging it.
#include "mproc/actors/queue_server.hpp"

#include "mproc/actors/queue_protocol.hpp"
#include "mproc/actors/queue_server_state.hpp"
#include "mproc/runtime/deadline.hpp"
#include "mproc/runtime/errors.hpp"
#include "mproc/runtime/message_types.hpp"
#include "mproc/runtime/node.hpp"

namespace mproc::detail {

namespace {

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
