// Frames: the unit of every mproc byte stream (socketpair or TCP).
//
//   frame = length:u32 big-endian | payload:length bytes (exactly one msgpack value)
//
// The decoder is incremental (bytes may arrive split anywhere) and bounded: a length above
// the configured maximum is rejected as soon as its four header bytes are seen, before any
// buffer for the payload is allocated. See docs/protocol.md, "Frames".
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "mproc/serialization/bytes.hpp"

namespace mproc::wire {

inline constexpr std::size_t frame_header_size = 4;

// Large enough for a 64 MiB message plus its envelope; small enough that a peer cannot make
// a node reserve gigabytes with four bytes. Configurable per node (node_options).
inline constexpr std::uint32_t default_max_frame = 80u << 20;

void put_frame_length(char* out, std::uint32_t length);
std::uint32_t get_frame_length(const char* in);

class frame_decoder {
public:
  explicit frame_decoder(std::uint32_t max_payload = default_max_frame);

  // Consumes `n` bytes and calls `on_frame(std::string_view payload)` once per complete frame,
  // in order. A payload view is valid only during the call. Returns false (and sets error())
  // once the stream is unusable; later calls do nothing.
  template <class OnFrame>
  bool feed(const char* data, std::size_t n, OnFrame&& on_frame);

  // From on_frame: the feed in progress returns after this frame, leaving its last
  // unconsumed() bytes alone (a stream that goes on elsewhere from that frame on).
  void stop_after_frame() { stop_ = true; }
  std::size_t unconsumed() const { return unconsumed_; }

  const std::string& error() const { return error_; }
  bool failed() const { return !error_.empty(); }

  // Bytes still missing from the frame being assembled (0 between frames).
  std::size_t pending_payload() const { return partial_ ? expected_ - fill_ : 0; }

  // Where the missing bytes of the frame being assembled go (pending_payload() of them): a
  // reader of a large frame receives straight into it, then calls commit. Saves a copy.
  char* payload_room() { return payload_.get() + fill_; }
  // `n` bytes were written at payload_room(); delivers the frame once it is complete.
  template <class OnFrame>
  void commit(std::size_t n, OnFrame&& on_frame);

  // A buffer of up to this size is kept for the next frame as it is. A larger one is kept
  // too, for a link that carries large messages one after the other (a fresh 64 MiB buffer
  // per message cost ~15% of bench's 64 MiB row in page clearing), but its pages are
  // released to the kernel once its frame is delivered (release_pages): one large message
  // does not hold memory the system needs for the link's life.
  static constexpr std::size_t keep_capacity = std::size_t{8} << 20;

private:
  bool accept_length(std::uint32_t length);
  void start_payload(std::uint32_t length);
  template <class OnFrame>
  void deliver(OnFrame& on_frame);

  std::uint32_t max_payload_;
  char header_[frame_header_size];
  std::size_t header_fill_ = 0;
  bool partial_ = false;          // a payload is being assembled in payload_
  std::uint32_t expected_ = 0;    // its announced length
  std::size_t fill_ = 0;          // bytes of it already in payload_
  std::unique_ptr<char[]> payload_;  // not value-initialised: every byte is written first
  std::size_t capacity_ = 0;
  std::string error_;
  bool stop_ = false;
  std::size_t unconsumed_ = 0;  // of the last feed
  // After a frame was handed out: true when the feed must stop there (stop_after_frame).
  bool stopped(std::size_t left) {
    if (!stop_)
      return false;
    stop_ = false;
    unconsumed_ = left;
    return true;
  }
};

template <class OnFrame>
void frame_decoder::deliver(OnFrame& on_frame) {
  partial_ = false;
  on_frame(std::string_view{payload_.get(), expected_});
  if (expected_ > keep_capacity)  // what this frame wrote; a small frame leaves pages as they are
    release_pages(payload_.get(), expected_);
}

template <class OnFrame>
void frame_decoder::commit(std::size_t n, OnFrame&& on_frame) {
  fill_ += n;
  if (fill_ == expected_)
    deliver(on_frame);
}

template <class OnFrame>
bool frame_decoder::feed(const char* data, std::size_t n, OnFrame&& on_frame) {
  unconsumed_ = 0;
  if (failed())
    return false;
  while (n > 0) {
    if (partial_) {
      auto take = std::min<std::size_t>(n, expected_ - fill_);
      std::copy(data, data + take, payload_.get() + fill_);
      fill_ += take;
      data += take;
      n -= take;
      if (fill_ < expected_)
        return true;
      deliver(on_frame);
      if (stopped(n))
        return true;
      continue;
    }
    if (header_fill_ == 0 && n >= frame_header_size) {
      // Fast path: the header is contiguous; deliver the payload in place when it is too.
      auto length = get_frame_length(data);
      if (!accept_length(length))
        return false;
      data += frame_header_size;
      n -= frame_header_size;
      if (n >= length) {
        on_frame(std::string_view{data, length});
        data += length;
        n -= length;
        if (stopped(n))
          return true;
      } else {
        start_payload(length);
      }
      continue;
    }
    auto take = std::min(n, frame_header_size - header_fill_);
    std::copy(data, data + take, header_ + header_fill_);
    header_fill_ += take;
    data += take;
    n -= take;
    if (header_fill_ < frame_header_size)
      return true;
    header_fill_ = 0;
    auto length = get_frame_length(header_);
    if (!accept_length(length))
      return false;
    if (length == 0) {
      on_frame(std::string_view{});
      if (stopped(n))
        return true;
    } else {
      start_payload(length);
    }
  }
  return true;
}

} // namespace mproc::wire
