// The pool's dispatcher: the actor in the caller's node that feeds chunks to worker
// processes as they ask, retries what a dead worker held, and keeps the worker count.
#pragma once

#include <condition_variable>
#include <memory>
#include <mutex>

#include <caf/behavior.hpp>
#include <caf/fwd.hpp>

#include "mproc/actors/pool.hpp"

namespace mproc::detail {

// Whether every worker has ended for good, for join() on the caller's thread.
struct pool_status {
  std::mutex m;
  std::condition_variable cv;
  bool over = false;

  // The pool is over: join() returns.
  void finish() {
    {
      std::lock_guard guard{m};
      over = true;
    }
    cv.notify_all();
  }
};

caf::behavior pool_dispatcher(caf::event_based_actor* self, pool_options options,
                              std::shared_ptr<pool_status> status);

} // namespace mproc::detail
