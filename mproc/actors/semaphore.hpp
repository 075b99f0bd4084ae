// Semaphore and BoundedSemaphore: Python's multiprocessing.Semaphore(value) and
// BoundedSemaphore(value), for every process of the tree.
//
//   mproc::semaphore slots{3};                 // at most three at a time
//   { auto held = slots.hold(); use_the_resource(); }
//
// Shared memory, as lock.hpp: an acquire or release that does not wait crosses no process.
// A token belongs to the process that acquired it until it releases one. When a process is
// killed holding tokens, they return within death_check_period (50 ms) and the acquirer
// that gets one is told (acquired::owner_died). Tokens a process holds when it ends in
// order (returns, throws, exits) are used up, as in Python.
// The counter pattern is told apart by its first release from a process that holds none
// (a producer announcing an item): from then on an acquired token is an item taken for
// good, not a resource held, and a consumer killed gives back none of what it took, as in
// Python.
//
// At most max_holders processes hold tokens of one semaphore at the same time (in the
// counter pattern nobody holds any).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>

#include <caf/allowed_unsafe_message_type.hpp>

#include "mproc/actors/guard.hpp"
#include "mproc/serialization/codec.hpp"

namespace mproc {

namespace detail {
class segment;
struct semaphore_state;
}

class semaphore {
public:
  using millis = std::chrono::milliseconds;
  static constexpr const char* kind_name = "semaphore";
  static constexpr std::uint32_t max_holders = 200;

  // Throws mproc::error bad_arguments for a negative value.
  explicit semaphore(std::int64_t value = 1);

  acquired acquire(bool block = true, wait_timeout timeout = {}) const;
  void release() const;
  guard<semaphore> hold() const { return guard<semaphore>{*this}; }
  guard<semaphore> hold(wait_timeout timeout) const { return guard<semaphore>{*this, timeout}; }
  // Tokens free now (a snapshot; Python's get_value()).
  std::int64_t value() const;

protected:
  semaphore(std::int64_t value, std::int64_t bound);

private:
  friend struct wire::codec<semaphore>;
  friend class bounded_semaphore;
  friend struct wire::codec<class bounded_semaphore>;
  semaphore(std::shared_ptr<detail::segment> seg, detail::semaphore_state* s);
  detail::semaphore_state& state() const;

  std::shared_ptr<detail::segment> seg_;
  detail::semaphore_state* s_ = nullptr;
};

// Releasing more often than acquired (above the initial value) throws bad_arguments, as
// Python's ValueError.
class bounded_semaphore : public semaphore {
public:
  static constexpr const char* kind_name = "bounded semaphore";
  explicit bounded_semaphore(std::int64_t value = 1) : semaphore{value, value} {}
  guard<bounded_semaphore> hold() const { return guard<bounded_semaphore>{*this}; }
  guard<bounded_semaphore> hold(wait_timeout timeout) const {
    return guard<bounded_semaphore>{*this, timeout};
  }

private:
  friend struct wire::codec<bounded_semaphore>;
  explicit bounded_semaphore(semaphore s) : semaphore{std::move(s)} {}
};

} // namespace mproc

template <>
struct mproc::wire::codec<mproc::semaphore> {
  static std::string name() { return "semaphore"; }
  static mproc::semaphore blank();
  static void encode(packer& pk, const mproc::semaphore& s, codec_state& st);
  static bool decode(const msgpack::object& o, mproc::semaphore& out, codec_state& st);
};
template <>
struct mproc::wire::codec<mproc::bounded_semaphore> {
  static std::string name() { return "bounded_semaphore"; }
  static mproc::bounded_semaphore blank();
  static void encode(packer& pk, const mproc::bounded_semaphore& s, codec_state& st);
  static bool decode(const msgpack::object& o, mproc::bounded_semaphore& out, codec_state& st);
};

template <>
struct caf::allowed_unsafe_message_type<mproc::semaphore> : std::true_type {};
template <>
struct caf::allowed_unsafe_message_type<mproc::bounded_semaphore> : std::true_type {};
