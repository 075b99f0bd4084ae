#include "mproc/serialization/frame.hpp"

#include "mproc/serialization/bytes.hpp"

namespace mproc::wire {

void put_frame_length(char* out, std::uint32_t length) {
  out[0] = static_cast<char>(length >> 24);
  out[1] = static_cast<char>(length >> 16);
  out[2] = static_cast<char>(length >> 8);
  out[3] = static_cast<char>(length);
}

std::uint32_t get_frame_length(const char* in) {
  auto byte = [in](int i) { return static_cast<std::uint32_t>(static_cast<unsigned char>(in[i])); };
  return (byte(0) << 24) | (byte(1) << 16) | (byte(2) << 8) | byte(3);
}

frame_decoder::frame_decoder(std::uint32_t max_payload) : max_payload_(max_payload) {}

bool frame_decoder::accept_length(std::uint32_t length) {
  if (length <= max_payload_)
    return true;
  error_ = "frame of " + std::to_string(length) + " bytes exceeds the limit of "
           + std::to_string(max_payload_) + " bytes";
  return false;
}

// Only called after accept_length: the reservation is bounded by the maximum frame size.
void frame_decoder::start_payload(std::uint32_t length) {
  partial_ = true;
  expected_ = length;
  fill_ = 0;
  if (capacity_ >= length)
    return;
  payload_.reset();  // before allocating: never two large buffers at once
  payload_ = std::make_unique_for_overwrite<char[]>(length);
  capacity_ = length;
  advise_huge_pages(payload_.get(), length);
}

} // namespace mproc::wire
