// A shared-memory ring pair: the byte stream of a local link (parent and child), kept out of
// the kernel. One memfd holds two single-producer/single-consumer byte rings, one per
// direction; each side has an eventfd that the other writes only when this side said it
// will not look again without one (its reader is idle, or its writer waits for room). The
// link's socket stays: it carries descriptors and tells a peer's death (link_ring.cpp).
//
// Why: on this 2-vCPU VM a round trip through a socket and epoll costs 17.6-22.4 µs with
// both processes on one CPU, through such a ring waking by eventfd and epoll 10.4-12.9 µs
// (a throwaway ping-pong of 16-byte messages, 2026-12-05): the send and receive system
// calls, and the socket's own wake-up, leave the path.
//
// Nothing in the mapping is believed about this side's own positions: a peer that went wrong
// may write anything there. A position that says more is readable than the ring holds breaks
// the link (got::broken); no read or write ever leaves the ring.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>

namespace mproc::detail {

// One direction's shared state, at the start of its part of the mapping.
struct ring_header {
  alignas(64) std::atomic<std::uint64_t> head{0};  // bytes published, ever (the writer's)
  alignas(64) std::atomic<std::uint64_t> tail{0};  // bytes consumed, ever (the reader's)
  // 1: the reader will not look again without a wake-up. Starts at 1: nobody reads yet.
  alignas(64) std::atomic<std::uint32_t> reader_idle{1};
  // 1: the writer has bytes that did not fit and waits for a wake-up.
  alignas(64) std::atomic<std::uint32_t> writer_waits{0};
};

class ring_mapping;

// The writing end of one direction. One thread at a time (the link's output lock).
class ring_writer {
public:
  ring_writer() = default;
  ring_writer(ring_header* h, char* data, std::size_t size) : h_(h), data_(data), size_(size) {}

  // Copies up to `n` bytes in, as room allows; they are not visible until publish().
  std::size_t put(const char* p, std::size_t n);
  // Makes what put() copied visible; true when the reader must be woken (never when
  // nothing new was put).
  bool publish();
  // No room: says the writer waits, unless room came meanwhile (false: put again).
  bool wait_for_room();
  // Bytes written that the reader has not consumed (0 for a position it broke).
  std::size_t unread() const;

private:
  // Loads the reader's tail: the room there is now.
  std::size_t room(std::memory_order order);
  ring_header* h_ = nullptr;
  char* data_ = nullptr;
  std::size_t size_ = 0;
  // The positions each side keeps for itself: what the other side writes into the mapping
  // is only ever read, never believed about this side's own progress.
  std::uint64_t written_ = 0;  // head plus what put() copied since the last publish
  std::uint64_t published_ = 0;
  std::uint64_t tail_seen_ = 0;  // the reader's tail as last loaded
};

// The reading end of one direction. One thread at a time (the loop's).
class ring_reader {
public:
  ring_reader() = default;
  ring_reader(ring_header* h, char* data, std::size_t size) : h_(h), data_(data), size_(size) {}

  struct got {
    std::size_t n = 0;         // bytes copied out
    bool wake_writer = false;  // the writer waited for the room they made
    bool broken = false;       // the writer's position is impossible
  };
  // Copies out up to `size` bytes and consumes them.
  got get(char* dst, std::size_t size);
  // Bytes are published that get() has not taken yet.
  bool more() const;
  // Nothing to read: says the reader is idle, unless bytes came meanwhile (false: get again).
  bool go_idle();
  // The reader reads again (set before it looks, so that no writer wakes it for nothing).
  void busy();

private:
  ring_header* h_ = nullptr;
  char* data_ = nullptr;
  std::size_t size_ = 0;
  std::uint64_t consumed_ = 0;  // the tail, as this side wrote it
};

// The memfd and its mapping: two directions of `ring_size` bytes each. The side that made it
// writes the first direction and reads the second; the side that mapped it the reverse.
class ring_mapping {
public:
  // Smaller messages cross in one go; a larger one streams through (and from 256 KiB on a
  // payload travels as a blob anyway).
  static constexpr std::size_t ring_size = 256 * 1024;

  // A new memfd and its mapping; nullptr (errno set) when the system refuses one.
  static std::unique_ptr<ring_mapping> create();
  // Maps a memfd the other side made; nullptr when it is not a ring mapping of this size.
  // Takes ownership of `memfd`.
  static std::unique_ptr<ring_mapping> map(int memfd);
  ~ring_mapping();
  ring_mapping(const ring_mapping&) = delete;
  ring_mapping& operator=(const ring_mapping&) = delete;

  int memfd() const { return memfd_; }
  ring_writer writer() const;
  ring_reader reader() const;

private:
  ring_mapping(int memfd, char* base, bool made_here);
  static constexpr std::size_t header_space = 256;  // a ring_header, rounded to a cache line
  static constexpr std::size_t total = 2 * (header_space + ring_size);
  ring_header* header(int direction) const;
  char* data(int direction) const;

  int memfd_;
  char* base_;
  bool made_here_;
};

} // namespace mproc::detail
