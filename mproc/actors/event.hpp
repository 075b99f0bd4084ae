// Event: Python's multiprocessing.Event, for every process of the tree.
//
//   mproc::event ready;
//   node.spawn_process("worker", {}, ready);   // the worker calls ready.set()
//   if (!ready.wait(5s)) ...                    // false: not set within 5 s
//
// One word of shared memory (actors/segment.hpp): is_set() and a set() nobody waits for
// cross no process; wait() sleeps on the word (a futex) until set() wakes it.
#pragma once

#include <chrono>
#include <memory>
#include <optional>

#include <caf/allowed_unsafe_message_type.hpp>

#include "mproc/runtime/deadline.hpp"
#include "mproc/serialization/codec.hpp"

namespace mproc {

namespace detail {
class segment;
struct event_state;
}

class event {
public:
  using millis = std::chrono::milliseconds;

  // A new event, clear.
  event();

  bool is_set() const;
  // Sets the flag and wakes every waiter.
  void set() const;
  void clear() const;
  // Waits until the flag is set; false when `timeout` passed first. As Python's, it returns
  // the flag once woken: false after a set() that a clear() undid before the waiter ran.
  bool wait(wait_timeout timeout = {}) const;

private:
  friend struct wire::codec<event>;
  event(std::shared_ptr<detail::segment> seg, detail::event_state* s);
  detail::event_state& state() const;

  std::shared_ptr<detail::segment> seg_;
  detail::event_state* s_ = nullptr;
};

} // namespace mproc

template <>
struct mproc::wire::codec<mproc::event> {
  static std::string name() { return "event"; }
  static mproc::event blank();
  static void encode(packer& pk, const mproc::event& e, codec_state& st);
  static bool decode(const msgpack::object& o, mproc::event& out, codec_state& st);
};

template <>
struct caf::allowed_unsafe_message_type<mproc::event> : std::true_type {};
