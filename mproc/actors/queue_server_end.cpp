// How a queue ends, and what the end of one of its producers or consumers changes
// (queue_server_state.hpp).
#include "mproc/actors/queue_server_state.hpp"

#include "mproc/runtime/errors.hpp"

namespace mproc::detail {

namespace {

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

} // namespace

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

} // namespace mproc::detail
