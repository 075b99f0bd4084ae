// What a link keeps of its shared-memory ring pair (link.hpp, link_ring.cpp). Internal to
// link.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

#include "mproc/runtime/internal/link.hpp"
#include "mproc/runtime/internal/ring.hpp"

namespace mproc::detail {

// The loop looks at `in` itself while its reader is awake (io_loop::poller).
struct link::ring_state final : io_loop::poller {
  std::unique_ptr<ring_mapping> mapping;
  ring_writer out;  // out_mtx_ held
  ring_reader in;   // loop thread
  int own_efd = -1;   // the other end writes it to wake this one
  int peer_efd = -1;  // this end writes it to wake the other
  std::uint64_t token = 0;  // own_efd's registration with the loop
  bool writing = false;        // out_mtx_ held: ring_on went out, frames go to the ring
  bool carrier_waits = false;  // out_mtx_ held: a frame's descriptors wait for the socket
  // Written by the loop thread: the other end's ring_on came. Atomic for on_ring().
  std::atomic<bool> reading{false};
  bool switch_queued = false;  // loop thread: this end's ring_on is queued
  // Loop thread: bytes of the carrier being read aside that were read already (the read
  // that brought ring_on may have stopped inside one).
  std::size_t carrier_offset = 0;
  static constexpr std::size_t carrier_size = 6;  // a heartbeat frame: [8]

  ~ring_state();
  ring_state() = default;
  ring_state(const ring_state&) = delete;
  ring_state& operator=(const ring_state&) = delete;
  bool ready() const override { return in.more(); }
  bool sleep() override { return in.go_idle(); }
  // Wakes the other end (an eventfd write: it sleeps in epoll_wait, or will look at once).
  void wake_peer() const;
  // Makes this end's loop look at the ring now (reading just began, or its writer left the
  // queue to the loop).
  void wake_self() const;
};

} // namespace mproc::detail
