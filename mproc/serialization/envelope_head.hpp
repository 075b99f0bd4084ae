// The heads of send and request envelopes read straight from a frame's bytes. Every message
// travels in one of the two, and msgpack-c building an object for each of their five or six
// fields, then the envelope decoder checking each, was a third of a one-way flood's receiving
// thread. Only the shape mproc itself packs is read here (a fixarray, unsigned integers);
// anything else says "not this shape" and the full decoder (envelope_decode.cpp) reads the
// frame, with its errors. Private to serialization.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "mproc/serialization/envelope.hpp"

namespace mproc::wire {

struct message_head {
  kind k = kind::send;  // send or request
  actor_ref to, from;
  std::uint64_t request = 0;   // request only
  std::size_t message_at = 0;  // where the message, the last field, starts in the payload
};

// True when `payload` starts like a send or request envelope in mproc's own encoding; the
// message after the head is not looked at.
bool read_message_head(std::string_view payload, message_head& out);

} // namespace mproc::wire
