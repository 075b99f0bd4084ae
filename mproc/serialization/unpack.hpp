// The one way mproc turns untrusted bytes into a msgpack object: bounded in nesting depth
// (max_nesting, protocol.hpp) and in element counts (by the input size), so neither a deep
// value nor a lying length header can exhaust the stack or the heap. Every decoder of bytes
// that crossed a process boundary goes through here (docs/protocol.md, section 1).
#pragma once

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

#include <msgpack.hpp>

namespace mproc::wire {

// Malformed, truncated, too deep or over-long input. what() starts with "malformed msgpack:"
// and says which, for a human.
class unpack_error : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

// Unpacks exactly one value that fills [data, data + size); trailing bytes are an error.
// Strings and binaries are copied into the handle's zone. Throws unpack_error.
msgpack::object_handle unpack_bounded(const char* data, std::size_t size);

// The same into `zone`, which the caller owns and may reuse (clear()) once done with the
// object: no allocation per value when the zone already has room. Strings and binaries are
// referenced in `data`, which must outlive the object. `outer_levels`: how deep inside a
// value already read the bytes sit, so a tail unpacked apart is held to the same max_nesting
// as it would be inside the whole.
msgpack::object unpack_bounded(msgpack::zone& zone, const char* data, std::size_t size,
                               std::uint32_t outer_levels = 0);
// The same from `offset`, advanced past the value; what follows is the caller's business.
msgpack::object unpack_bounded(msgpack::zone& zone, const char* data, std::size_t size,
                               std::size_t& offset, std::uint32_t outer_levels = 0);

// Unpacks one value starting at `offset` and advances it past the value; what follows is the
// caller's business. `reference` decides which strings and binaries stay in `data` instead of
// being copied (msgpack-c's unpack_reference_func; nullptr copies all). Throws unpack_error.
msgpack::object_handle unpack_bounded(const char* data, std::size_t size, std::size_t& offset,
                                      msgpack::unpack_reference_func reference = nullptr);

} // namespace mproc::wire
