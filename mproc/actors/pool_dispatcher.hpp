// The pool's dispatcher: the actor in the caller's node that feeds chunks to worker
// processes as they ask, retries what a dead worker held, and keeps the worker count.
#pragma once

#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <utility>

#include <caf/behavior.hpp>
#include <caf/fwd.hpp>

#include "mproc/actors/pool.hpp"

namespace mproc::detail {

struct pool_job;

// Whether every worker has ended for good, for join() on the caller's thread; and the jobs
// handed in and not yet taken by the dispatcher. They wait here rather than in its mailbox:
// a dispatcher that ends (an exception in a handler, a kill) drops what its mailbox holds,
// and their callers would wait for ever; its end fails what it finds here instead.
struct pool_status {
  std::mutex m;
  std::condition_variable cv;
  bool over = false;
  std::deque<std::shared_ptr<pool_job>> handed_in;
  bool dispatcher_ended = false;

  // False once the dispatcher has ended: the caller fails the job.
  bool hand_in(std::shared_ptr<pool_job> job) {
    std::lock_guard guard{m};
    if (dispatcher_ended)
      return false;
    handed_in.push_back(std::move(job));
    return true;
  }
  // The jobs handed in so far; with `ending`, none is taken after.
  std::deque<std::shared_ptr<pool_job>> take_handed_in(bool ending = false) {
    std::lock_guard guard{m};
    dispatcher_ended = dispatcher_ended || ending;
    return std::exchange(handed_in, {});
  }

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
