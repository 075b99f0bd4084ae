// A process's side of a queue: the handles' blocking calls (behind queue_core) and its
// leaving. One per queue and process (queue_core.cpp finds it); what happens at process exit
// is in queue_exit.cpp, the agent actor it talks through in queue_agent.cpp, items on the
// wire in queue_items.cpp. Internal to the actors layer.
#pragma once

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/send.hpp>

#include "mproc/actors/queue.hpp"
#include "mproc/actors/queue_agent.hpp"
#include "mproc/actors/queue_exit.hpp"
#include "mproc/actors/queue_protocol.hpp"
#include "mproc/runtime/blocking.hpp"
#include "mproc/runtime/caf_types.hpp"
#include "mproc/runtime/errors.hpp"
#include "mproc/runtime/node.hpp"

namespace mproc::detail {

class queue_client final : public queue_leaver {
public:
  using millis = std::chrono::milliseconds;
  using clock_type = std::chrono::steady_clock;

  // `ch`: the channel of an earlier client of `q` in this process whose retired agent still
  // sends its puts (none: a new one). Shared, this process's puts keep one order, and
  // flush(), close() and join() wait for the earlier ones too.
  queue_client(caf::actor q, std::size_t maxsize, std::shared_ptr<queue_channel> ch = nullptr)
    : queue_(std::move(q)), bounded_(maxsize != 0),
      ch_(ch ? std::move(ch) : std::make_shared<queue_channel>()) {
    std::lock_guard guard{ch_->m};
    ch_->has_client = true;
    if (maxsize != 0)  // a process never holds more unsent items than the queue may
      ch_->outbox_limit = std::min(put_window, maxsize);
  }

  ~queue_client() {
    try {
      // Without waiting for the flush: the last handle can go on any thread, the node's I/O
      // thread too (a message holding it), where waiting would hold up the very answers
      // it waits for. The agent sends the rest, then the leave; the exit hook waits.
      leave(false);
    } catch (...) {
      // A destructor must not throw; leave() only throws if the node is gone.
    }
    // From now on a new client may share the channel: this one's leave is done with it.
    {
      std::lock_guard guard{ch_->m};
      ch_->has_client = false;
    }
    ch_->cv.notify_all();
  }

  void put(std::string_view item, std::optional<millis> timeout) {
    std::unique_lock lock{ch_->m};
    auto room = [&] {
      return (ch_->outbox.size() + ch_->in_flight < ch_->outbox_limit
              && (ch_->outbox.empty()
                  || ch_->outbox.byte_size() + item.size() <= max_batch_bytes))
             || ch_->put_error;
    };
    if (!bounded_ && timeout) {
      // Never full, as in Python: what holds the put back is the batch ahead of it still
      // going out, whatever the timeout. Only a queue that stops accepting ends the wait.
      if (!wait_while_accepting(lock, room))
        throw error(make_error(errc::timeout, "the queue accepted nothing for 10 s"),
                    "put: the queue accepted none of this process's puts for 10 s");
    } else if (!wait(lock, timeout, room)) {
      throw error(make_error(errc::full, "the queue is full"),
                  "put: the queue stayed full for " + std::to_string(timeout->count()) + " ms");
    }
    if (ch_->put_error)
      throw error(ch_->put_error, "put: " + render(ch_->put_error));
    ch_->outbox.append(item);
    ++ch_->appended;
    if (!ch_->sending) {
      ch_->sending = true;
      caf::anon_send(agent_locked(), agent_call{agent_call::flush});
    }
  }

  void put_nowait(std::string_view item) {
    bool pending = false;
    {
      std::lock_guard guard{ch_->m};
      pending = !ch_->outbox.empty() || ch_->sending;
    }
    // Behind this process's earlier puts, which keeps their order, if it may run that far
    // ahead of the queue (as put() without waiting); else asked of the queue itself. (An
    // unbounded queue is never full: put() waits for the batch ahead there.)
    if (pending)
      return put(item, millis{0});
    item_batch one;
    one.append(item);
    this_node().request(queue_, std::chrono::seconds{30}, q_putnow_atom::value, std::move(one));
  }

  // Up to `max` items of the oldest fetched batch (get_many's "between 1 and max").
  item_run get_many(std::size_t max, std::optional<millis> timeout) {
    std::unique_lock lock{ch_->m};
    finish_taken_locked();
    if (timeout && timeout->count() <= 0 && ch_->inbox.empty() && !ch_->get_error) {
      // As Python's get(timeout=0): get_nowait(), which asks the queue. A fetch would be
      // cancelled at once, leaving what it brought prefetched here while the caller stops.
      lock.unlock();
      return get_nowait();
    }
    if (!wait_for_items(lock, timeout))
      throw error(make_error(errc::empty, "the queue is empty"),
                  "get: no item within " + std::to_string(timeout->count()) + " ms");
    if (ch_->inbox.empty()) {
      acknowledge_locked();
      throw error(ch_->get_error, "get: " + render(ch_->get_error));
    }
    auto items = take_locked(max);
    if (ch_->inbox_count < max_batch / 2)  // prefetch while the consumer works
      fetch_locked(false);
    return items;
  }

  item_run get_nowait() {
    {
      std::unique_lock lock{ch_->m};
      finish_taken_locked();
      if (!ch_->inbox.empty())
        return take_locked(1);
      if (ch_->queue_gone)  // its agent ended with it: it would answer no_such_actor
        throw error(ch_->get_error, "get_nowait: " + render(ch_->get_error));
    }
    // Through the agent: the queue must know who holds the item. The agent puts it in the
    // inbox itself, in the order the queue handed out batches (so that the places that
    // name items stay true), and the oldest item there is taken.
    this_node().request_message(agent(), caf::make_message(agent_call{agent_call::get_now}),
                                std::chrono::seconds{30});
    std::lock_guard guard{ch_->m};
    finish_taken_locked();
    if (ch_->inbox.empty())  // another thread was quicker
      throw error(make_error(errc::empty, "the queue is empty"), "get_nowait: the queue is empty");
    return take_locked(1);
  }

  // The tail of the last get's items, which the caller did not take after all (it could not
  // decode one): back to the front of the inbox, not counted as taken. Only while no other
  // get or leave came in between (else the counts would name other items); false then.
  bool untake(const item_run& rest) {
    std::lock_guard guard{ch_->m};
    if (rest.take != ch_->takes)
      return false;
    if (rest.size() != 0) {
      ch_->inbox.push_front(rest);
      ch_->inbox_count += rest.size();
      ch_->acks.untake(queue_acks::this_thread(), rest.size());
    }
    return true;
  }

  bool poll(std::optional<millis> timeout) {
    std::unique_lock lock{ch_->m};
    return wait_for_items(lock, timeout);
  }

  bool flush(std::optional<millis> timeout) {
    std::unique_lock lock{ch_->m};
    auto flushed = [&] { return (ch_->outbox.empty() && !ch_->sending) || ch_->put_error; };
    return wait(lock, timeout, flushed) && !ch_->put_error;
  }

  // Closes the queue once this process's puts are in, waiting while the queue keeps
  // accepting them (a full queue nobody drains would otherwise hold close() forever; what
  // it holds back then is refused by the close). Its own later puts fail at once, others'
  // when the queue refuses their next batch.
  void close() {
    {
      std::unique_lock lock{ch_->m};
      wait_for_flush(lock, "closing it");
    }
    this_node().request(queue_, std::chrono::seconds{30}, q_close_atom::value);
    {
      std::lock_guard guard{ch_->m};
      ch_->put_error = make_error(errc::closed, "the queue is closed");
    }
    ch_->cv.notify_all();
  }

  // Tells the queue how many of the items it handed this process were taken: those are
  // finished, the queue takes back the rest. With `wait_flush`, first waits for the puts to
  // be accepted, as Python's queue does at process exit; without, they go out after the
  // leave, from the retired agent. Asynchronous: at exit, leave_all() waits for both.
  void leave(bool wait_flush = true) override {
    std::unique_lock lock{ch_->m};
    if (!agent_ || ch_->queue_gone)
      return;  // nothing handed out to this process since it last left (or ever), or gone
    if (wait_flush) {
      wait_for_flush(lock, "leaving");  // unlocks: another thread may have left meanwhile
      if (!agent_ || ch_->queue_gone)
        return;
    }
    auto done = ch_->acks.claim_all();
    ch_->inbox.clear();
    ch_->inbox_count = 0;
    ch_->received = 0;        // the next agent is a new consumer to the queue
    ++ch_->takes;             // an untake of what was handed out before would count twice
    ++ch_->generation;        // what the old agent still receives is not ours any more
    ch_->fetching = false;    // a get still waiting fetches again, through a new agent
    ++ch_->leaves_pending;
    auto agent = std::move(agent_);
    if (!exit_settled())
      ch_->retiring.push_back(agent);  // until its leave is answered and its puts went out
    else if (auto unsent = ch_->outbox.size() + ch_->in_flight; unsent > 0)
      // After the exit hook nothing waits for it: the node is ending its actors.
      std::fprintf(stderr,
                   "mproc: a queue handle was dropped after this process settled its queues "
                   "for exit; %zu item(s) it put may not be delivered\n",
                   unsent);
    lock.unlock();
    ch_->cv.notify_all();
    caf::anon_send(agent, agent_call{agent_call::leave, false, std::move(done)});
  }

  // Through the agent when this process took items not yet acknowledged or reported: the
  // queue knows the consumer by its agent, and acknowledges them (queue_acks::claim_tasks)
  // with the tasks.
  void task_done(std::uint64_t n) {
    caf::actor via;
    {
      std::unique_lock lock{ch_->m};
      // The queue counts a task when it accepts the put's batch: a task_done() overtaking
      // this process's own earlier puts could let join() return while one of them is still
      // on its way. Python counts the task in put(); here the puts made before are in first
      // (not later ones: another thread that keeps putting must not hold this one).
      auto before = ch_->appended;
      if (!wait_while_accepting(lock, [&] {
            return ch_->settled_puts >= before || ch_->put_error;
          }))
        throw error(make_error(errc::timeout, "the queue accepted nothing for 10 s"),
                    "task_done: the queue accepted none of this process's earlier puts for "
                    "10 s; the task is not counted done");
      if (agent_ && ch_->acks.any())
        via = agent_;
      else  // nothing to name (what was taken before a leave): the counts only
        ch_->acks.claim_tasks(queue_acks::this_thread(), n);
    }
    if (via)
      this_node().request_message(via,
                                  caf::make_message(agent_call{agent_call::task_done, false, {},
                                                               n, queue_acks::this_thread()}),
                                  std::chrono::seconds{30});
    else
      this_node().request(queue_, std::chrono::seconds{30}, q_done_atom::value, n);
  }

  const caf::actor& actor() const { return queue_; }
  const std::shared_ptr<queue_channel>& channel() const override { return ch_; }

private:
  // Hands out up to `max` items of the oldest fetched batch (there is one).
  item_run take_locked(std::size_t max) {
    auto& front = ch_->inbox.front();
    auto n = std::min(std::max<std::size_t>(max, 1), front.size());
    item_run out{front.batch, front.next, front.next + n, ++ch_->takes, front.first};
    ch_->acks.took(queue_acks::this_thread(), {front.first + front.next, n});
    front.next += n;
    if (front.next == front.end)
      ch_->inbox.pop_front();
    ch_->inbox_count -= n;
    return out;
  }

  // Waits until this process's puts went out (or failed) while the queue keeps accepting
  // them; false after stalled_flush_limit without any progress.
  bool wait_while_accepting(std::unique_lock<std::mutex>& lock) {
    return wait_while_accepting(lock, [&] {
      return (ch_->outbox.empty() && !ch_->sending) || ch_->put_error;
    });
  }

  // Waits for `pred` while the queue keeps accepting this process's puts.
  template <class Pred>
  bool wait_while_accepting(std::unique_lock<std::mutex>& lock, Pred pred) {
    auto seen = ch_->accepted;
    if (!pred())
      will_block();
    while (!ch_->cv.wait_for(lock, stalled_flush_limit, pred)) {
      if (ch_->accepted == seen)
        return false;
      seen = ch_->accepted;
    }
    return true;
  }

  // Waits while the queue keeps accepting; gives up after stalled_flush_limit without any
  // progress, logging what is dropped (while this process is `doing` what).
  void wait_for_flush(std::unique_lock<std::mutex>& lock, const char* doing) {
    if (!wait_while_accepting(lock)) {
      auto dropped = ch_->outbox.size() + ch_->in_flight;
      ch_->put_error = make_error(errc::full, "the queue accepted nothing for 10 s");
      ch_->outbox.clear();
      lock.unlock();
      ch_->cv.notify_all();  // puts and flushes waiting meanwhile fail now
      std::fprintf(stderr,
                   "mproc: a queue accepted nothing for 10 s while this process was %s; "
                   "%zu item(s) it put were not delivered\n",
                   doing, dropped);
      lock.lock();
    }
  }

  template <class Pred>
  bool wait(std::unique_lock<std::mutex>& lock, std::optional<millis> timeout, Pred pred) {
    if (!pred() && (!timeout || timeout->count() > 0))
      will_block();
    if (!timeout) {
      ch_->cv.wait(lock, pred);
      return true;
    }
    return ch_->cv.wait_until(lock, clock_type::now() + *timeout, pred);
  }

  // Until an item (or the queue's end) is here. A fetch in flight may be a prefetch that
  // comes back empty, so each time none is in flight a waiting one is sent. On timeout the
  // queue is told to stop holding items for us (a batch already on its way still lands).
  bool wait_for_items(std::unique_lock<std::mutex>& lock, std::optional<millis> timeout) {
    auto ready = [&] { return !ch_->inbox.empty() || ch_->get_error; };
    auto deadline = clock_type::now() + timeout.value_or(millis{0});
    while (!ready()) {
      fetch_locked(true);
      auto progressed = [&] { return ready() || !ch_->fetching; };
      if (!progressed() && (!timeout || timeout->count() > 0))
        will_block();
      if (!timeout) {
        ch_->cv.wait(lock, progressed);
      } else if (!ch_->cv.wait_until(lock, deadline, progressed)) {
        caf::anon_send(agent_locked(), agent_call{agent_call::cancel});
        return false;
      }
    }
    return true;
  }

  // What this thread's last get handed out is finished; an untake of it now would count it
  // twice, so that take is over.
  void finish_taken_locked() {
    if (ch_->acks.finish(queue_acks::this_thread()))
      ++ch_->takes;
  }

  // A consumer told `closed` (by a prefetch, while it still had items) asks the queue for
  // nothing more, yet must acknowledge what it took: another process's get on the closed
  // queue waits for that (docs/queue.md, point 6). A fetch carries the acknowledgment.
  void acknowledge_locked() {
    // Only for `closed`, which comes only with nothing left to fetch: after another error
    // (an item above this process's max_frame) the fetch would bring items nobody asked for.
    if (!ch_->acks.any_finished() || ch_->fetching || !agent_ || ch_->queue_gone
        || code_of(ch_->get_error) != errc::closed)
      return;
    ch_->fetching = true;
    caf::anon_send(agent_, agent_call{agent_call::fetch, false});
  }

  void fetch_locked(bool wait) {
    if (ch_->fetching || ch_->get_error)
      return;
    ch_->fetching = true;
    caf::anon_send(agent_locked(), agent_call{agent_call::fetch, wait});
  }

  caf::actor agent() {
    std::lock_guard guard{ch_->m};
    return agent_locked();
  }

  caf::actor& agent_locked() {
    if (!agent_)
      agent_ = this_node().system().spawn(queue_agent, ch_, queue_, ch_->generation);
    return agent_;
  }

  static std::string render(const caf::error& e) { return this_node().system().render(e); }

  caf::actor queue_;
  bool bounded_;
  std::shared_ptr<queue_channel> ch_;
  caf::actor agent_;  // spawned on first use; its behaviour shares ch_, never this object
};

} // namespace mproc::detail
