// Condition: Python's multiprocessing.Condition, for every process of the tree.
//
//   mproc::condition changed;                          // on a new rlock, as Python's
//   // a consumer, anywhere:
//   auto held = changed.hold();
//   changed.wait_for([&] { return !items.empty(); }, 5s);
//   // a producer:
//   { auto held = changed.hold(); add(); changed.notify(); }
//
// wait() releases the lock (every level of an rlock), sleeps until notified, and takes the
// lock back. notify(n) wakes the n waiters that came first; a live waiter's wake-up is
// never taken by one that arrives later. A notify that went to a waiter killed before it
// woke passes, within death_check_period (50 ms), to another waiter, which may have come
// after the notify (a wake-up it was not meant for, which a condition allows). As in Python, check
// the condition in a loop after waking, or use wait_for. wait and notify need the lock
// held by the calling thread.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <variant>

#include <caf/allowed_unsafe_message_type.hpp>

#include "mproc/actors/guard.hpp"
#include "mproc/actors/lock.hpp"
#include "mproc/serialization/codec.hpp"

namespace mproc {

namespace detail {
class segment;
class deadline;
struct condition_state;
struct waiter_slot;
}

class condition {
public:
  using millis = std::chrono::milliseconds;
  static constexpr const char* kind_name = "condition";
  static constexpr unsigned max_waiters = 200;

  condition();  // on a new rlock
  explicit condition(mproc::lock l);
  explicit condition(mproc::rlock l);

  // The lock's acquire and release.
  acquired acquire(bool block = true, wait_timeout timeout = {}) const;
  void release() const;
  guard<condition> hold() const { return guard<condition>{*this}; }
  guard<condition> hold(wait_timeout timeout) const { return guard<condition>{*this, timeout}; }

  // False when `timeout` passed without a notify. Throws bad_arguments unless this thread
  // holds the lock (another thread of its process does not count, as in Python).
  bool wait(wait_timeout timeout = {}) const;
  // Waits until pred() holds or `limit` passes; returns pred()'s last value.
  template <class Pred>
  bool wait_for(Pred pred, wait_timeout limit = {}) const {
    auto timeout = limit.get();
    if (timeout && *timeout >= forever_beyond)
      timeout.reset();
    auto end = std::chrono::steady_clock::now() + timeout.value_or(millis{0});
    bool result = pred();
    while (!result) {
      std::optional<millis> left;
      if (timeout) {
        left = std::chrono::duration_cast<millis>(end - std::chrono::steady_clock::now());
        if (left->count() <= 0)
          break;
      }
      wait(left);
      result = pred();
    }
    return result;
  }
  // Wakes up to `n` waiters (all of them: notify_all). Needs the lock held.
  void notify(unsigned n = 1) const;
  void notify_all() const;

private:
  friend struct wire::codec<condition>;
  condition(std::shared_ptr<detail::segment> seg, std::variant<mproc::lock, mproc::rlock> l);
  bool lock_held() const;
  bool sleep(detail::waiter_slot& slot, const detail::deadline& until) const;
  // Releases the lock (every level of an rlock) and takes it back as it was.
  unsigned let_go() const;
  void take_back(unsigned depth) const;

  std::shared_ptr<detail::segment> seg_;
  detail::condition_state* s_ = nullptr;
  std::variant<mproc::lock, mproc::rlock> lock_;
};

} // namespace mproc

// On the wire: [its memory, true for an rlock, the lock].
template <>
struct mproc::wire::codec<mproc::condition> {
  static std::string name() { return "condition"; }
  static mproc::condition blank();
  static void encode(packer& pk, const mproc::condition& c, codec_state& st);
  static bool decode(const msgpack::object& o, mproc::condition& out, codec_state& st);
};

template <>
struct caf::allowed_unsafe_message_type<mproc::condition> : std::true_type {};
