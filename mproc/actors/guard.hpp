// What acquiring a Lock, RLock, Semaphore or Condition tells, and holding one for a scope
// as Python's `with lock:` does.
//
//   if (auto got = lock.acquire(true, 1s)) {   // Python's acquire(block, timeout)
//     if (got.owner_died) repair();            // the last holder died holding it
//     ...
//     lock.release();
//   }
//   {
//     auto held = lock.hold();                 // released at the end of the scope
//   }
#pragma once

#include <chrono>
#include <exception>
#include <string>
#include <utility>

#include "mproc/runtime/deadline.hpp"
#include "mproc/runtime/errors.hpp"

namespace mproc {

struct acquired {
  bool ok = false;
  // Taken from a process that died holding it: the data it guarded may be half-written.
  bool owner_died = false;
  explicit operator bool() const { return ok; }
};

namespace detail {
[[noreturn]] void throw_acquire_timeout(const char* what);
// mproc::error bad_arguments: a primitive used as it cannot be (released too often, ...).
[[noreturn]] void throw_misuse(const std::string& text);
// A guard's scope ended and its release failed (another thread released it first).
void report_failed_release(const char* what, const std::exception& e) noexcept;
}

// Holds a handle's primitive from construction to destruction (or release()).
template <class Lockable>
class [[nodiscard]] guard {
public:
  explicit guard(const Lockable& l) : held_{l}, got_{held_.acquire()} {}
  // Throws mproc::error timeout when not acquired within `timeout`.
  guard(const Lockable& l, wait_timeout timeout)
      : held_{l}, got_{held_.acquire(true, timeout)} {
    if (!got_)
      detail::throw_acquire_timeout(Lockable::kind_name);
  }
  // A destructor must not throw (it would end the program, also while unwinding from an
  // exception): a release that fails here, because another thread or process already
  // released what this guard holds, is logged instead.
  ~guard() {
    try {
      release();
    } catch (const std::exception& e) {
      detail::report_failed_release(Lockable::kind_name, e);
    }
  }
  guard(guard&& other) noexcept : held_{other.held_}, got_{std::exchange(other.got_, {})} {}
  guard(const guard&) = delete;
  guard& operator=(const guard&) = delete;
  guard& operator=(guard&&) = delete;

  bool owner_died() const { return got_.owner_died; }
  // Releases now rather than at the end of the scope.
  void release() {
    if (std::exchange(got_.ok, false))
      held_.release();
  }

private:
  Lockable held_;  // a handle: a copy shares the primitive
  acquired got_;
};

} // namespace mproc
