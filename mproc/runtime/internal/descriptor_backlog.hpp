// What the descriptors a link sends keep alive until the other end reads them. A blob of
// any size travels as a memfd beside a frame of a few dozen bytes: counting the frame alone,
// a writer to a process that stopped reading queued a thousand 1 MiB blobs (and the kernel
// kept each in the socket) under a 16 MiB bound. Each frame's descriptors weigh what their
// files hold, from the moment the frame is queued until the other end has read past it; the
// link counts that weight toward its bound. Internal to link; out_mtx_ held.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <vector>

namespace mproc::detail {

class descriptor_backlog {
public:
  // A frame carrying `weight` was queued, or dropped unsent.
  void queued(std::size_t weight) { queued_ += weight; }
  void dropped(std::size_t weight) { queued_ -= weight; }
  // Its first byte went out; it ends at byte `end` of the stream.
  void sent(std::size_t weight, std::uint64_t end);
  // The other end has read the stream at least up to byte `position`.
  void read_up_to(std::uint64_t position);
  void clear();

  std::size_t total() const { return queued_ + in_flight_; }
  bool in_flight() const { return !flight_.empty(); }

private:
  struct sent_frame {
    std::uint64_t end;
    std::size_t weight;
  };
  std::size_t queued_ = 0;
  std::size_t in_flight_ = 0;
  std::deque<sent_frame> flight_;  // in stream order
};

// What the files of `fds` hold (a memfd's size; a socket's 0).
std::size_t weight_of(const std::vector<int>& fds);

// Of a Unix stream socket: bytes sent that the other end may not have read yet. An upper
// bound (the kernel counts each unread buffer whole, with its overhead); 0 on any error.
std::size_t unread_by_peer(int fd);

} // namespace mproc::detail
