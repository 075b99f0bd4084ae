// What a process took from a queue and has not acknowledged yet, item by item, per thread
// (docs/queue.md, point 3). Items are named by their places among all the queue handed the
// process's agent, so an acknowledgment names exactly the items finished: a thread's get
// finishes what that thread's last get returned, not what another thread is still working
// on (which a count of "the oldest n" would have named). No locking: the channel's mutex
// guards it (queue_agent.hpp).
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

namespace mproc::detail {

// Items [first, first + n) of those the queue handed one agent.
struct item_span {
  std::uint64_t first = 0;
  std::uint64_t n = 0;
};

class queue_acks {
public:
  using thread_key = std::uint64_t;
  static thread_key this_thread();

  // Thread `t`'s last get is finished: its items are acknowledged with the next message.
  // Returns whether it had any.
  bool finish(thread_key t);
  // Thread `t`'s get handed out `s` (after finish(t)).
  void took(thread_key t, item_span s) { open_of(t) = s; }
  // The last `n` items of `t`'s get were not taken after all (untake).
  void untake(thread_key t, std::uint64_t n);

  bool any() const;
  bool any_finished() const { return !finished_.empty(); }

  // The wire form of what the claims return: first and n of each span, flat.
  using spans = std::vector<std::uint64_t>;
  // Everything finished, for the next message to the queue.
  spans claim_finished();
  // Up to `n` items for as many task_done()s of thread `t`: its own last get's first (the
  // items it most likely reports), then finished ones.
  spans claim_tasks(thread_key t, std::uint64_t n);
  // Everything taken, finished or not: the process leaves.
  spans claim_all();
  void clear();

private:
  void add_finished(item_span s);
  static void append(spans& out, item_span s);
  item_span* find_open(thread_key t);
  item_span& open_of(thread_key t);

  std::vector<item_span> finished_;  // by first, merged where they touch
  // Each thread's last get (n == 0: finished), a thread's entry kept for its next get: a
  // get costs a short scan and no allocation (a map's node per get was 4% of the 5x5
  // producer-consumer).
  std::vector<std::pair<thread_key, item_span>> open_;
};

} // namespace mproc::detail
