// Barrier: Python's multiprocessing.Barrier, for every process of the tree.
//
//   mproc::barrier start{4};                     // four parties
//   // in each of four processes (or threads):
//   auto index = start.wait(10s);                // 0..3, different for each party
//
// wait() throws mproc::error broken_barrier (Python's BrokenBarrierError) when the barrier
// is or becomes broken: abort(), reset() while parties wait, a wait that times out (which
// breaks it for everyone, as in Python), or a party that dies while it waits — noticed
// within death_check_period (50 ms). reset() makes a broken barrier usable again.
//
// Python's `action` argument has no equivalent: a function cannot travel between
// processes. The party that gets index parties() - 1 arrived last and can act.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>

#include <caf/allowed_unsafe_message_type.hpp>

#include "mproc/runtime/deadline.hpp"
#include "mproc/serialization/codec.hpp"

namespace mproc {

namespace detail {
class segment;
struct barrier_state;
}

class barrier {
public:
  using millis = std::chrono::milliseconds;
  static constexpr std::uint32_t max_parties = 200;

  // Throws mproc::error bad_arguments unless 1 <= parties <= max_parties.
  explicit barrier(std::uint32_t parties);

  // The order of arrival: 0 for the first party, parties() - 1 for the last.
  std::uint32_t wait(wait_timeout timeout = {}) const;
  void reset() const;
  void abort() const;
  std::uint32_t parties() const;
  // Parties waiting now (a snapshot).
  std::uint32_t n_waiting() const;
  bool broken() const;

private:
  friend struct wire::codec<barrier>;
  barrier(std::shared_ptr<detail::segment> seg, detail::barrier_state* s);
  detail::barrier_state& state() const;

  std::shared_ptr<detail::segment> seg_;
  detail::barrier_state* s_ = nullptr;
};

} // namespace mproc

template <>
struct mproc::wire::codec<mproc::barrier> {
  static std::string name() { return "barrier"; }
  static mproc::barrier blank();
  static void encode(packer& pk, const mproc::barrier& b, codec_state& st);
  static bool decode(const msgpack::object& o, mproc::barrier& out, codec_state& st);
};

template <>
struct caf::allowed_unsafe_message_type<mproc::barrier> : std::true_type {};
