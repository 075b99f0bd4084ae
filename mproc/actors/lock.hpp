// Lock and RLock: Python's multiprocessing.Lock and RLock, for every process of the tree.
//
//   mproc::lock printing;                                  // no node needed
//   node.spawn_process("worker", {}, printing);            // passed as an argument
//   // in any process holding a copy:
//   { auto held = printing.hold(); std::cout << ...; }     // Python's `with lock:`
//
// A lock lives in shared memory (actors/segment.hpp): an uncontended acquire or release is
// one atomic instruction in this process. A lock belongs to a process, not a thread:
// another thread of the holding process may release it, as in Python. When the holding
// process dies, the lock does not stay locked: within death_check_period (50 ms) the next
// acquirer takes it and is told (acquired::owner_died), so it can check the data the lock
// guarded, as a robust mutex's EOWNERDEAD does.
//
// An RLock may be acquired again by the thread that holds it, and is released when that
// thread has released it as often; other threads, here or elsewhere, wait. Released by a
// thread that does not hold it, it throws (Python's RuntimeError).
//
// Handles are cheap to copy and share one lock; the memory goes when the last process
// holding a handle lets go of it (nothing in /dev/shm to leak).
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>

#include <caf/allowed_unsafe_message_type.hpp>

#include "mproc/actors/guard.hpp"
#include "mproc/serialization/codec.hpp"

namespace mproc {

class rlock;

namespace detail {
class segment;
struct lock_state;
struct rlock_state;
// An rlock kept at `at` inside `seg` (rlock_size bytes, zeroed when `fresh`), for objects
// that keep their lock beside their data (shared_value, shared_array).
inline constexpr std::size_t rlock_size = 64;
rlock rlock_at(std::shared_ptr<segment> seg, void* at, bool fresh);
}

class lock {
public:
  using millis = std::chrono::milliseconds;
  static constexpr const char* kind_name = "lock";

  // A new lock, released.
  lock();

  // Python's acquire(block=True, timeout=None): false-ish on timeout (or at once with
  // block = false, when another process holds it).
  acquired acquire(bool block = true, wait_timeout timeout = {}) const;
  // Throws mproc::error bad_arguments when the lock is not held ("released too many times").
  void release() const;
  guard<lock> hold() const { return guard<lock>{*this}; }
  guard<lock> hold(wait_timeout timeout) const { return guard<lock>{*this, timeout}; }
  // True while some process holds it (a snapshot).
  bool locked() const;

private:
  friend struct wire::codec<lock>;
  friend class condition;
  lock(std::shared_ptr<detail::segment> seg, detail::lock_state* s);
  detail::lock_state& state() const;
  // By this thread (a condition's wait checks it, as Python's does).
  bool held_by_this_thread() const;

  std::shared_ptr<detail::segment> seg_;
  detail::lock_state* s_ = nullptr;
};

class rlock {
public:
  using millis = std::chrono::milliseconds;
  static constexpr const char* kind_name = "rlock";

  rlock();

  acquired acquire(bool block = true, wait_timeout timeout = {}) const;
  // Throws mproc::error bad_arguments unless this thread holds it.
  void release() const;
  guard<rlock> hold() const { return guard<rlock>{*this}; }
  guard<rlock> hold(wait_timeout timeout) const { return guard<rlock>{*this, timeout}; }
  bool locked() const;

private:
  friend struct wire::codec<rlock>;
  friend class condition;
  friend rlock detail::rlock_at(std::shared_ptr<detail::segment>, void*, bool);
  rlock(std::shared_ptr<detail::segment> seg, detail::rlock_state* s);
  detail::rlock_state& state() const;
  bool held_by_this_thread() const;
  // Condition::wait: releases every level at once and gives back how many there were.
  unsigned release_all() const;
  void restore(unsigned depth) const;

  std::shared_ptr<detail::segment> seg_;
  detail::rlock_state* s_ = nullptr;
};

} // namespace mproc

// On the wire: [descriptor index, kind], the lock's memory travelling beside the frame
// (docs/protocol.md, "Descriptors"); a copy, the sender keeps its handle.
template <>
struct mproc::wire::codec<mproc::lock> {
  static std::string name() { return "lock"; }
  static mproc::lock blank();  // an empty handle: decoding makes no new lock
  static void encode(packer& pk, const mproc::lock& l, codec_state& st);
  static bool decode(const msgpack::object& o, mproc::lock& out, codec_state& st);
};
template <>
struct mproc::wire::codec<mproc::rlock> {
  static std::string name() { return "rlock"; }
  static mproc::rlock blank();
  static void encode(packer& pk, const mproc::rlock& l, codec_state& st);
  static bool decode(const msgpack::object& o, mproc::rlock& out, codec_state& st);
};

template <>
struct caf::allowed_unsafe_message_type<mproc::lock> : std::true_type {};
template <>
struct caf::allowed_unsafe_message_type<mproc::rlock> : std::true_type {};
