#include "mproc/runtime/internal/inline_runner.hpp"

#include <caf/actor_system.hpp>
#include <caf/resumable.hpp>
#include <caf/scheduler/abstract_coordinator.hpp>

namespace mproc::detail {

namespace {

thread_local inline_runner* this_thread_runner = nullptr;

} // namespace

inline_runner::inline_runner(caf::actor_system& sys) : caf::execution_unit(&sys) {
  this_thread_runner = this;
}

inline_runner::~inline_runner() {
  hand_over();
}

inline_runner* inline_runner::current() {
  return this_thread_runner;
}

void inline_runner::exec_later(caf::resumable* job) {
  // An actor run here messaging another: the other runs here too, within the budget. An
  // actor's execution unit is where it last ran, so another thread may hand one over here
  // (a response promise delivered elsewhere): that goes to the scheduler.
  {
    std::lock_guard guard{mtx_};
    bool room = !running_ || started_ + jobs_.size() < max_resumes;
    if (this_thread_runner == this && !abandoned_ && !retired_ && room) {
      jobs_.push_back(job);
      return;
    }
  }
  system().scheduler().enqueue(job);
}

bool inline_runner::pending() const {
  std::lock_guard guard{mtx_};
  return !jobs_.empty();
}

caf::resumable* inline_runner::next() {
  std::lock_guard guard{mtx_};
  if (jobs_.empty() || started_ == max_resumes) {
    hand_over_locked();
    running_ = false;
    abandoned_ = false;
    return nullptr;
  }
  ++started_;
  auto* job = jobs_.front();
  jobs_.pop_front();
  return job;
}

void inline_runner::run() {
  {
    std::lock_guard guard{mtx_};
    running_ = true;
    started_ = 0;
  }
  while (auto* job = next()) {
    switch (job->resume(this, max_throughput)) {
      case caf::resumable::resume_later:
        system().scheduler().enqueue(job);  // more mail than the budget: its reference goes along
        break;
      case caf::resumable::done:
      case caf::resumable::awaiting_message:
      case caf::resumable::shutdown_execution_unit:
        intrusive_ptr_release(job);  // the reference taken when it was scheduled
        break;
    }
  }
}

void inline_runner::hand_over() {
  std::lock_guard guard{mtx_};
  hand_over_locked();
}

void inline_runner::abandon() {
  std::lock_guard guard{mtx_};
  hand_over_locked();
  abandoned_ = running_;
}

void inline_runner::retire() {
  std::lock_guard guard{mtx_};
  hand_over_locked();
  retired_ = true;
  this_thread_runner = nullptr;
}

void inline_runner::hand_over_locked() {
  for (auto* job : jobs_)
    system().scheduler().enqueue(job);
  jobs_.clear();
}

} // namespace mproc::detail
