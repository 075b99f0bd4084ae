// The introspection socket's bytes: one length-prefixed frame each way (the link's frame
// format), holding one msgpack value. docs/introspection.md specifies them.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "mproc/serialization/value.hpp"

namespace mproc::detail {

using inspect_clock = std::chrono::steady_clock;

// Largest request a node reads; a snapshot may be larger (a tree of many processes).
inline constexpr std::uint32_t max_inspect_request = 64 * 1024;
inline constexpr std::uint32_t max_inspect_reply = 64 * 1024 * 1024;

// The frame holding `v`.
std::string inspect_frame(const value& v);

// On a blocking stream socket, until `deadline`. Throw mproc::error: timeout, closed (EOF
// before a whole frame), bad_message (too large, or not msgpack).
void write_inspect_frame(int fd, const value& v, inspect_clock::time_point deadline);
value read_inspect_frame(int fd, std::uint32_t max, inspect_clock::time_point deadline);

} // namespace mproc::detail
