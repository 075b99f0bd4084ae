// A Manager's Event, Lock and Value (Python's manager.Event(), Lock(), Value()): held by the
// manager, so that processes on other machines share them too. (Between processes of one
// machine mproc::event, lock and shared_value cost less: they live in shared memory.)
//
//   auto ready = manager.event();
//   ready.wait(5s);                      // false after 5 s without a set()
//   auto l = manager.lock();
//   if (auto got = l.acquire(true, 1s)) { ...; l.release(); }
//   auto hits = manager.value<std::int64_t>(0);
//   hits.set(hits.get() + 1);            // two calls: not atomic, as in Python
//
// Waiting happens in the manager, which answers when the event is set or the lock free, or
// the timeout passes; a waiter whose process ends is forgotten, and a lock whose holder's
// process ends passes on, the next holder told (acquired::owner_died).
#pragma once

#include <chrono>
#include <optional>

#include "mproc/actors/guard.hpp"
#include "mproc/actors/manager_ref.hpp"
#include "mproc/runtime/deadline.hpp"
#include "mproc/runtime/message_types.hpp"

namespace mproc {

class manager;

class event_proxy {
public:
  using millis = std::chrono::milliseconds;
  event_proxy() { (void)registered_; }

  void set() const;
  void clear() const;
  bool is_set() const;
  // True once set; false when `timeout` passed first.
  bool wait(wait_timeout timeout = {}) const;

  void set_timeout(millis t) { ref_.timeout(t); }
  const detail::manager_ref& ref() const { return ref_; }

private:
  friend class manager;
  friend struct detail::proxy_codec<event_proxy>;
  explicit event_proxy(detail::manager_ref ref) : ref_{std::move(ref)} { (void)registered_; }
  detail::manager_ref ref_;
  static const bool registered_;
};

class lock_proxy {
public:
  using millis = std::chrono::milliseconds;
  lock_proxy() { (void)registered_; }

  // Python's acquire(blocking, timeout). owner_died: the last holder's process ended
  // holding it.
  acquired acquire(bool blocking = true, wait_timeout timeout = {}) const;
  // Anyone may release it, as Python's Lock; releasing a free lock throws bad_arguments.
  void release() const;
  bool locked() const;
  static constexpr const char* kind_name = "manager lock";  // in guard's errors
  // Python's `with lock:`: held until the end of the scope, also when it ends by an
  // exception (a long-lived process that throws would otherwise hold it until it ends).
  guard<lock_proxy> hold() const { return guard<lock_proxy>{*this}; }
  guard<lock_proxy> hold(wait_timeout timeout) const { return guard<lock_proxy>{*this, timeout}; }

  void set_timeout(millis t) { ref_.timeout(t); }
  const detail::manager_ref& ref() const { return ref_; }

private:
  friend class manager;
  friend struct detail::proxy_codec<lock_proxy>;
  explicit lock_proxy(detail::manager_ref ref) : ref_{std::move(ref)} { (void)registered_; }
  detail::manager_ref ref_;
  static const bool registered_;
};

template <class T>
class value_proxy {
public:
  value_proxy() { (void)registered_; }

  T get() const { return detail::unpack_value<T>(ref_.call_one(caf::atom("get"), {})); }
  void set(const T& x) const { ref_.call(caf::atom("set"), {detail::pack_value<T>(x)}); }

  void set_timeout(std::chrono::milliseconds t) { ref_.timeout(t); }
  const detail::manager_ref& ref() const { return ref_; }

private:
  friend class manager;
  friend struct detail::proxy_codec<value_proxy>;
  explicit value_proxy(detail::manager_ref ref) : ref_{std::move(ref)} { (void)registered_; }
  detail::manager_ref ref_;
  inline static const bool registered_ = detail::register_message_type<value_proxy>();
};

} // namespace mproc

template <>
struct mproc::wire::codec<mproc::event_proxy> : mproc::detail::proxy_codec<mproc::event_proxy> {
  static std::string name() { return "event_proxy"; }
};
template <>
struct mproc::wire::codec<mproc::lock_proxy> : mproc::detail::proxy_codec<mproc::lock_proxy> {
  static std::string name() { return "lock_proxy"; }
};
template <class T>
struct mproc::wire::codec<mproc::value_proxy<T>>
    : mproc::detail::proxy_codec<mproc::value_proxy<T>> {
  static std::string name() { return "value_proxy<" + codec<T>::name() + ">"; }
};

template <>
struct caf::allowed_unsafe_message_type<mproc::event_proxy> : std::true_type {};
template <>
struct caf::allowed_unsafe_message_type<mproc::lock_proxy> : std::true_type {};
template <class T>
struct caf::allowed_unsafe_message_type<mproc::value_proxy<T>> : std::true_type {};
