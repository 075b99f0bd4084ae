#include "mproc/actors/queue_agent.hpp"

#include <algorithm>
#include <map>
#include <optional>
#include <utility>
#include <vector>

#include <caf/event_based_actor.hpp>

#include "mproc/actors/queue_protocol.hpp"
#include "mproc/runtime/caf_types.hpp"
#include "mproc/runtime/errors.hpp"
#include "mproc/runtime/log.hpp"
#include "mproc/runtime/node.hpp"

namespace mproc::detail {

namespace {

// One agent's own progress, against the channel it shares with its successors.
struct agent_life {
  bool sending = false;  // its chain of put batches runs (send_next)
  bool left = false;     // the queue answered its leave
  // task_done() calls the queue has not answered yet, by a number of the agent's own: the
  // agent stays until each is answered (by the queue, or at its end by the agent).
  std::map<std::uint64_t, caf::response_promise> tasks_done;
  std::uint64_t last_task_done = 0;
};

// A retired agent ends once its leave was answered and its batches went out.
void end_if_done(caf::event_based_actor* self, queue_channel& ch, const agent_life& life) {
  if (!life.left || life.sending || !life.tasks_done.empty())
    return;  // (an answer still due to a task_done() caller, who would wait for it in vain)
  caf::actor held;  // released after the lock; the running actor keeps itself meanwhile
  {
    std::lock_guard guard{ch.m};
    auto me = self->address();
    auto i = std::find_if(ch.retiring.begin(), ch.retiring.end(),
                          [&](const caf::actor& a) { return a.address() == me; });
    if (i != ch.retiring.end()) {
      held = std::move(*i);
      ch.retiring.erase(i);
    }
  }
  self->quit();
}

// Sends the next batch of puts once the previous one was accepted.
void send_next(caf::event_based_actor* self, std::shared_ptr<queue_channel> ch, caf::actor q,
               std::shared_ptr<agent_life> life) {
  item_batch batch;
  {
    std::lock_guard guard{ch->m};
    if (ch->sending && ch->in_flight > 0) {
      ++ch->accepted;
      ch->settled_puts += ch->in_flight;
    }
    std::swap(batch, ch->outbox);
    ch->outbox.reserve(batch.size(), batch.byte_size());  // the next one, sized as this one
    ch->in_flight = batch.size();
    if (batch.empty())
      ch->sending = false;
  }
  ch->cv.notify_all();  // the previous batch was accepted: room again, or all went out
  life->sending = !batch.empty();
  if (batch.empty()) {
    end_if_done(self, *ch, *life);
    return;
  }
  auto size = batch.byte_size();
  self->request(q, caf::infinite, q_put_atom::value, std::move(batch))
    .then([=] { send_next(self, ch, q, life); },
          [=](caf::error& e) {
            if (code_of(e) == errc::frame_too_large) {
              // One item above the link's largest frame (such an item travels alone in its
              // batch) is lost alone, as Python's feeder thread drops an item it cannot
              // send; the puts behind it go on.
              log::warn("a queue item of ", size, " bytes was dropped: ",
                        this_node().system().render(e));
              send_next(self, ch, q, life);
              return;
            }
            std::size_t refused = 0;
            {
              std::lock_guard guard{ch->m};
              refused = ch->in_flight + ch->outbox.size();
              ch->put_error = e;
              ch->sending = false;
              ch->in_flight = 0;
              ch->outbox.clear();
            }
            // put() returned for them long ago: the only sign left that they never went in
            // (another process's close() closes the queue for every producer).
            if (refused > 0)
              log::warn(refused, " queue item(s) put by this process were refused: ",
                        this_node().system().render(e));
            ch->cv.notify_all();
            life->sending = false;
            end_if_done(self, *ch, *life);
          });
}

// Finished items, named (queue_acks.hpp), ahead of the message that follows on the same way.
void send_acks(caf::event_based_actor* self, const caf::actor& q, queue_acks::spans done) {
  if (!done.empty())
    self->send(q, q_ack_atom::value, std::move(done));
}

// Tells the queue which of the items it handed this process were taken (it takes back the
// rest, prefetched ones included), at once: puts still going out do not depend on it.
void send_leave(caf::event_based_actor* self, std::shared_ptr<queue_channel> ch, caf::actor q,
                std::shared_ptr<agent_life> life, queue_acks::spans done) {
  auto answered = [=] {
    {
      std::lock_guard guard{ch->m};
      if (ch->leaves_pending > 0)  // the queue's end may have reset it (on_queue_gone)
        --ch->leaves_pending;
    }
    ch->cv.notify_all();
    life->left = true;
    end_if_done(self, *ch, *life);
  };
  send_acks(self, q, std::move(done));
  self->request(q, leave_timeout, q_leave_atom::value, std::uint64_t{0})
    .then([=] { answered(); }, [=](caf::error&) { answered(); });
}

// Items the queue handed to agent `gen`, into the inbox in the order they came; false, and
// dropped, when the process left since (the queue took them back then). `fetched`: the
// answer to a fetch, which may come again.
bool into_inbox(queue_channel& ch, std::uint64_t gen, item_batch items, bool fetched = false) {
  auto n = items.size();
  auto shared = n == 0 ? nullptr : std::make_shared<const item_batch>(std::move(items));
  std::lock_guard guard{ch.m};
  if (ch.generation != gen)
    return false;
  if (shared) {
    ch.inbox.push_back({std::move(shared), 0, n, 0, ch.received});
    ch.inbox_count += n;
    ch.received += n;
  }
  if (fetched)
    ch.fetching = false;
  return true;
}

// The items finished since the last acknowledgement, now sent along by agent `gen`; nothing
// for a retired agent: its successor sends what was finished since the leave.
std::optional<queue_acks::spans> claim_done(queue_channel& ch, std::uint64_t gen) {
  std::lock_guard guard{ch.m};
  if (ch.generation != gen)
    return std::nullopt;
  return ch.acks.claim_finished();
}

// Up to `n` of the items taken and not yet acknowledged, claimed by task_done() in thread
// `thread` through agent `gen` (none for a retired agent: its leave acknowledged them).
queue_acks::spans claim_tasks(queue_channel& ch, std::uint64_t gen, std::uint64_t n,
                              queue_acks::thread_key thread) {
  std::lock_guard guard{ch.m};
  if (ch.generation != gen)
    return {};
  return ch.acks.claim_tasks(thread, n);
}

// A batch above this process's max_frame (one item: a batch grows past 512 KiB only with its
// first) was handed to it but never came: it still counts among those received (`first`).
void count_unreachable(queue_channel& ch, const caf::error& e) {
  if (code_of(e) == errc::frame_too_large)
    ++ch.received;
}

// `wait`: the consumer has nothing left and waits at the queue. Otherwise a prefetch, which
// never waits there: a consumer with work in hand must not take new items from others.
void fetch(caf::event_based_actor* self, std::shared_ptr<queue_channel> ch, caf::actor q,
           bool wait, std::uint64_t gen) {
  auto claimed = claim_done(*ch, gen);
  if (!claimed)
    return;
  auto done = std::move(*claimed);
  auto max = static_cast<std::uint32_t>(max_batch);
  auto request = wait ? self->request(q, caf::infinite, q_get_atom::value, max, done)
                      : self->request(q, caf::infinite, q_getnow_atom::value, max, done);
  std::move(request).then(
      [=](item_batch& items) {
        if (into_inbox(*ch, gen, std::move(items), true))
          ch->cv.notify_all();
      },
      [=](caf::error& e) {
        {
          std::lock_guard guard{ch->m};
          if (ch->generation != gen)
            return;
          count_unreachable(*ch, e);
          if (code_of(e) != errc::empty)  // an empty queue only ends a prefetch
            ch->get_error = e;
          ch->fetching = false;
        }
        ch->cv.notify_all();
      });
}

// Asked by the queue while another consumer's get waits: the newer half of what this
// process fetched and did not take goes back (all of it, asked again and again, from a
// process that stopped getting; half from one still working through it, which keeps it
// busy), with the acknowledgment of what it finished.
void give_back_untaken(caf::event_based_actor* self, queue_channel& ch, const caf::actor& q,
                       std::uint64_t gen) {
  std::vector<std::pair<std::uint64_t, std::uint64_t>> ranges;  // (first, count), newest first
  queue_acks::spans done;
  {
    std::lock_guard guard{ch.m};
    if (ch.generation != gen || ch.queue_gone)
      return;  // this process left: the queue took everything back then
    done = ch.acks.claim_finished();
    auto n = (ch.inbox_count + 1) / 2;
    // A prefetch told `closed` while this process held these items: once they are back in
    // the queue, that is not true any more, and the next get asks again.
    if (n != 0 && code_of(ch.get_error) == errc::closed)
      ch.get_error = {};
    ch.inbox_count -= n;
    while (n > 0) {
      auto& newest = ch.inbox.back();
      auto k = std::min<std::uint64_t>(n, newest.size());
      newest.end -= k;
      ranges.emplace_back(newest.first + newest.end, k);
      n -= k;
      if (newest.size() == 0)
        ch.inbox.pop_back();
    }
  }
  send_acks(self, q, std::move(done));
  for (auto [first, n] : ranges)
    self->send(q, q_return_atom::value, first, n);
}

// The queue ended (its node ended, its process died): nothing will answer any more, so
// every call fails at once and the agent ends with it rather than outlive it.
void on_queue_gone(caf::event_based_actor* self, const std::shared_ptr<queue_channel>& ch,
                   agent_life& mine) {
  auto gone = make_error(errc::closed, "the queue has ended");
  {
    std::lock_guard guard{ch->m};
    ch->queue_gone = true;
    if (!ch->get_error)
      ch->get_error = gone;
    if (!ch->put_error)
      ch->put_error = gone;
    ch->fetching = false;
    ch->sending = false;
    ch->in_flight = 0;
    ch->outbox.clear();
    ch->leaves_pending = 0;
    // What was fetched ahead and not taken is the queue's again, or gone with it: a link to
    // the queue's node declared down (a remote consumer stopped past the heartbeat) gave it
    // back there, and handing it out here too would deliver it twice.
    ch->inbox.clear();
    ch->inbox_count = 0;
    ++ch->takes;  // an untake of what was taken before puts nothing back
  }
  ch->cv.notify_all();
  for (auto& [n, rp] : mine.tasks_done)
    rp.deliver(gone);
  mine.tasks_done.clear();
  auto life = agent_life{false, true};
  end_if_done(self, *ch, life);  // out of `retiring` too
}

// Asked by get_nowait(). The agent asks the queue itself (a delegate would keep the caller
// as sender), so the item is held by this agent and acknowledged with the rest.
caf::result<void> get_now(caf::event_based_actor* self, const std::shared_ptr<queue_channel>& ch,
                          const caf::actor& q, std::uint64_t gen) {
  auto rp = self->make_response_promise();
  auto done = claim_done(*ch, gen);
  if (!done) {
    rp.deliver(make_error(errc::empty, "this process left the queue meanwhile"));
    return caf::delegated<void>{};
  }
  self->request(q, caf::infinite, q_getnow_atom::value, std::uint32_t{1}, std::move(*done))
    .then(
      [=](item_batch& items) mutable {
        if (into_inbox(*ch, gen, std::move(items)))
          rp.deliver(caf::unit);  // the empty reply of a void request
        else  // a leave gave this item back already
          rp.deliver(make_error(errc::empty, "this process left the queue meanwhile"));
      },
      [=](caf::error& e) mutable {
        {
          std::lock_guard guard{ch->m};
          if (ch->generation == gen)
            count_unreachable(*ch, e);
        }
        rp.deliver(std::move(e));
      });
  return caf::delegated<void>{};
}

// Asked by task_done(): `n` tasks are finished, and as many of the items this process took
// are acknowledged with them, so a consumer killed after its task_done() does not get that
// item delivered again, to be done a second time.
caf::result<void> finish_tasks(caf::event_based_actor* self,
                               const std::shared_ptr<queue_channel>& ch, const caf::actor& q,
                               std::uint64_t gen, const std::shared_ptr<agent_life>& life,
                               std::uint64_t n, queue_acks::thread_key thread) {
  auto rp = self->make_response_promise();
  auto id = ++life->last_task_done;
  life->tasks_done.emplace(id, rp);
  auto answered = [=](caf::error e) {
    auto i = life->tasks_done.find(id);
    if (i == life->tasks_done.end())
      return;  // answered at the queue's end
    if (e)
      i->second.deliver(std::move(e));
    else
      i->second.deliver(caf::unit);
    life->tasks_done.erase(i);
    end_if_done(self, *ch, *life);
  };
  // One message: a process killed between an acknowledgment and its task would leave an
  // item neither delivered again nor counted done, and join() waiting for ever.
  self->request(q, caf::infinite, q_done_atom::value, n, claim_tasks(*ch, gen, n, thread))
    .then([=] { answered({}); }, [=](caf::error& e) { answered(e); });
  return caf::delegated<void>{};
}

} // namespace

caf::behavior queue_agent(caf::event_based_actor* self, std::shared_ptr<queue_channel> ch,
                          caf::actor q, std::uint64_t gen) {
  self->monitor(q);
  auto life = std::make_shared<agent_life>();
  self->set_down_handler([=](caf::down_msg&) { on_queue_gone(self, ch, *life); });
  return {
    [=](agent_call& c) -> caf::result<void> {
      switch (c.what) {
        case agent_call::flush:
          send_next(self, ch, q, life);
          break;
        case agent_call::fetch:
          fetch(self, ch, q, c.wait, gen);
          break;
        case agent_call::cancel:
          self->send(q, q_cancel_atom::value);
          break;
        case agent_call::get_now:
          return get_now(self, ch, q, gen);
        case agent_call::leave:
          send_leave(self, ch, q, life, std::move(c.done));
          break;
        case agent_call::task_done:
          return finish_tasks(self, ch, q, gen, life, c.tasks, c.thread);
      }
      return caf::unit;
    },
    [=](q_recall_atom) { give_back_untaken(self, *ch, q, gen); },  // from the queue
  };
}

} // namespace mproc::detail
