// A pool job: one per map/apply call, what the dispatcher settles chunk by chunk and the
// caller's thread reads its results from (pool.hpp declares the functions on it).
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <caf/error.hpp>

#include "mproc/actors/pool.hpp"

namespace mproc::detail {

struct pool_job {
  std::string task;
  std::size_t chunks = 0;
  chunk_source next;  // dispatcher thread only
  std::size_t fed = 0;

  std::mutex m;
  std::condition_variable cv;
  // Per chunk; set once, then read without the lock by whoever saw it set.
  std::vector<std::optional<settled_chunk>> results;
  std::deque<std::size_t> finished;  // not yet taken by next_finished
  std::size_t done = 0;
  caf::error failure;                // the job as a whole
  std::vector<std::function<void()>> on_done;

  bool complete_locked() const { return done == chunks || failure; }

  void settle(std::size_t index, settled_chunk result) {
    std::vector<std::function<void()>> callbacks;
    {
      std::lock_guard guard{m};
      if (results[index] || failure)
        return;
      results[index] = std::move(result);
      finished.push_back(index);
      ++done;
      if (complete_locked())
        callbacks.swap(on_done);
    }
    cv.notify_all();
    for (auto& fn : callbacks)
      fn();
  }

  void fail(caf::error why) {
    std::vector<std::function<void()>> callbacks;
    {
      std::lock_guard guard{m};
      if (complete_locked())
        return;
      failure = std::move(why);
      callbacks.swap(on_done);
    }
    cv.notify_all();
    for (auto& fn : callbacks)
      fn();
  }
};

} // namespace mproc::detail
