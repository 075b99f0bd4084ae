// What a process took from a queue and has not acknowledged yet, item by item, per thread
// (docs/queue.md, points 3 and 5). Items are named by their places among all the queue
// handed the process's agent, so an acknowledgment names exactly the items finished: a
// thread's get finishes what that thread's last get returned, not what another thread is
// still working on (which a count of "the oldest n" would have named). No locking: the
// channel's mutex guards it (queue_agent.hpp).
#pragma once

#include <cstdint>
#include <vector>

namespace mproc::detail {

// Items [first, first + n) of those the queue handed one agent.
struct item_span {
  std::uint64_t first = 0;
  std::uint64_t n = 0;
};

class queue_acks {
public:
  using thread_key = std::uint64_t;  // unique per thread for the life of the process
  static thread_key this_thread();

  // Thread `t`'s last get is finished: its items are acknowledged with the next message.
  // Returns whether it had any.
  bool finish(thread_key t);
  // Thread `t`'s get handed out `s` (after finish(t)).
  void took(thread_key t, item_span s);
  // The last `n` items of `t`'s get were not taken after all (untake).
  void untake(thread_key t, std::uint64_t n);

  bool any() const;           // anything taken and not acknowledged or not reported
  bool any_finished() const;  // ... of it finished

  // The wire form of what the claims return: first and n of each span, flat.
  using spans = std::vector<std::uint64_t>;
  // Everything finished, for the next message to the queue.
  spans claim_finished();
  // `n` task_done()s of thread `t`, each for the oldest item `t` took and did not report
  // yet: one already acknowledged (nothing to send), else finished, else its last get's;
  // then, for a thread that took fewer, finished items of other threads (never what another
  // thread may still work on).
  spans claim_tasks(thread_key t, std::uint64_t n);
  // Everything taken, finished or not: the process leaves (what was taken stays to be
  // reported by task_done()).
  spans claim_all();

private:
  struct thread_items {
    thread_key key = 0;
    std::uint64_t unreported = 0;     // acknowledged with a fetch, no task_done() for it yet
    std::vector<item_span> finished;  // oldest first, not acknowledged yet
    item_span open;                   // its last get
  };

  thread_items* find(thread_key t);
  thread_items& of(thread_key t);
  static std::uint64_t claim_front(item_span& s, std::uint64_t n, spans& out);
  static std::uint64_t claim_from(std::vector<item_span>& from, std::uint64_t n, spans& out);
  static void append(spans& out, item_span s);
  static void acknowledge(thread_items& items, spans& out);
  void forget_idle();

  // One entry per thread that took items, found by a short scan (a get costs no
  // allocation); entries with nothing left are dropped when there are many.
  std::vector<thread_items> threads_;
};

} // namespace mproc::detail
