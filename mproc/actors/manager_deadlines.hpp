// The timeouts of a manager's waiting calls (an event's wait, a lock's acquire, a queue's get,
// put or join), in one heap with one timer message on its way, for the earliest. CAF 0.17
// cannot cancel a delayed message: with one per wait, each stayed queued for its whole
// timeout however early the wait was answered, so a lock passed back and forth under
// acquire(timeout = 1 h) grew the manager by a message per acquire for an hour. Entries of
// waits answered early are dropped whenever the heap has doubled since its last clean-up.
// Internal to the manager's server.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <vector>

namespace mproc::detail {

class manager_deadlines {
public:
  using clock = std::chrono::steady_clock;
  struct entry {
    clock::time_point due;
    std::uint64_t object;
    std::uint64_t token;
  };
  // Whether an entry's wait is still waiting (not answered, its object not gone).
  using still_waiting = std::function<bool(const entry&)>;

  // Adds a wait's deadline. Returns the time for a new timer message when `e` is due before
  // the one on its way (or none is), and counts that timer as on its way.
  std::optional<clock::time_point> add(entry e, const still_waiting& waiting);
  // A timer message for `due` arrived at `now`: the entries due by then, taken out. Then
  // next_timer() says whether another timer must go.
  std::vector<entry> due_by(clock::time_point due, clock::time_point now);
  // The time for the next timer message, if one must go now; counted as on its way.
  std::optional<clock::time_point> next_timer();

  std::size_t size() const { return heap_.size(); }

private:
  void clean(const still_waiting& waiting);

  std::vector<entry> heap_;  // a min-heap by due time
  std::optional<clock::time_point> timer_;  // the earliest timer message on its way
  std::size_t clean_at_ = min_clean;
  static constexpr std::size_t min_clean = 1024;
};

} // namespace mproc::detail
