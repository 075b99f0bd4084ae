// How much work one pull of a pool's worker takes: about `batch_budget` of it, at the pace
// the task last ran at. Short tasks travel in batches (one round trip for thousands), a long
// one goes alone as in Python, so no task waits behind a long one in a busy worker while
// another worker is idle. Part of the pool's dispatcher, which runs it on its own thread.
#pragma once

#include <chrono>
#include <cstddef>
#include <string>
#include <unordered_map>

namespace mproc::detail {

class pool_pace {
public:
  static constexpr std::chrono::microseconds batch_budget{2000};

  // Items of `task` a pull may take; 0 while its pace is unknown (one chunk, to learn it).
  std::size_t items_for(const std::string& task) const;
  // A worker spent `elapsed` running a batch of `items` items of `task` (its own measure:
  // with the round trip in it, a batch of very short tasks on a busy machine would look
  // slow and stay small).
  void measured(const std::string& task, std::size_t items, std::chrono::nanoseconds elapsed);

private:
  std::unordered_map<std::string, double> ns_per_item_;  // one entry per task name
};

} // namespace mproc::detail
