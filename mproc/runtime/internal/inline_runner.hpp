// Runs on a loop thread the actors that the frames it read made runnable (io_loop's
// batch_work): the actor answers in the thread that read its message, with no wake-up of a
// scheduler thread in between.
//
// Each loop thread has one. Code that delivers a message on a loop thread passes
// `inline_runner::current()` as the execution unit, so CAF hands an actor that was idle to
// this runner instead of the scheduler. What the runner cannot take (past its budget, with
// nobody standing by to take the loop over, or once the loop was taken over because an actor
// here blocks) goes to the scheduler as before.
#pragma once

#include <cstddef>
#include <deque>
#include <mutex>

#include <caf/execution_unit.hpp>
#include <caf/fwd.hpp>

#include "mproc/runtime/internal/io_loop.hpp"

namespace mproc::detail {

class inline_runner final : public caf::execution_unit, public io_loop::batch_work {
public:
  // Resumes per batch, and messages per resume: a busy actor or a long chain of actors
  // messaging each other continues on the scheduler.
  static constexpr std::size_t max_resumes = 16;
  static constexpr std::size_t max_throughput = 64;

  // Becomes the runner of the calling thread.
  explicit inline_runner(caf::actor_system& sys);
  ~inline_runner() override;

  // This thread's runner, or nullptr on other threads.
  static inline_runner* current();

  void exec_later(caf::resumable* job) override;

  bool pending() const override;
  void run() override;
  void hand_over() override;
  void abandon() override;
  void retire() override;

private:
  caf::resumable* next();
  void hand_over_locked();

  // Guards the jobs against abandon(), called by the other loop thread.
  mutable std::mutex mtx_;
  std::deque<caf::resumable*> jobs_;  // each holds the reference CAF took for scheduling
  std::size_t started_ = 0;            // resumes in this run
  bool running_ = false;
  bool abandoned_ = false;
  bool retired_ = false;
};

} // namespace mproc::detail
