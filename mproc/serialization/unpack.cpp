#include "mproc/serialization/unpack.hpp"

#include <algorithm>
#include <memory>

#include "mproc/serialization/protocol.hpp"

namespace mproc::wire {

namespace {

// msgpack-c's own texts ("depth size overflow") do not say what the limit is or why.
[[noreturn]] void rethrow(std::size_t size) {
  try {
    throw;
  } catch (const msgpack::depth_size_overflow&) {
    throw unpack_error("malformed msgpack: nested deeper than " + std::to_string(max_nesting)
                       + " levels");
  } catch (const msgpack::size_overflow&) {
    throw unpack_error("malformed msgpack: a header claims more than the " + std::to_string(size)
                       + " bytes hold");
  } catch (const msgpack::insufficient_bytes&) {
    throw unpack_error("malformed msgpack: truncated value");
  } catch (const std::bad_alloc&) {
    throw;
  } catch (const std::exception& e) {
    throw unpack_error(std::string{"malformed msgpack: "} + e.what());
  }
}

// Every element takes at least one byte, so no count can honestly exceed the input size;
// the limit stops a five-byte header from reserving gigabytes of msgpack objects.
msgpack::unpack_limit limit_for(std::size_t size, std::uint32_t outer_levels = 0) {
  return {size, size, size, size, size, max_nesting - std::min(outer_levels, max_nesting)};
}

void expect_end(std::size_t offset, std::size_t size) {
  if (offset != size)
    throw unpack_error("malformed msgpack: " + std::to_string(size - offset)
                       + " trailing bytes after the value");
}

// msgpack-c starts every handle's zone at 8 KiB, a malloc of 8 KiB for each 20-byte frame
// (the 1-item chunks of a pool's map spent a tenth of the root's time in malloc and free of
// them). The zone starts near what the value needs instead, and grows like before past it.
std::size_t zone_size_for(std::size_t bytes) {
  return std::clamp<std::size_t>(8 * bytes, 256, MSGPACK_ZONE_CHUNK_SIZE);
}

} // namespace

msgpack::object_handle unpack_bounded(const char* data, std::size_t size, std::size_t& offset,
                                      msgpack::unpack_reference_func reference) {
  try {
    auto zone = std::make_unique<msgpack::zone>(zone_size_for(size - std::min(offset, size)));
    bool referenced = false;
    auto obj = msgpack::unpack(*zone, data, size, offset, referenced, reference, nullptr,
                               limit_for(size));
    return msgpack::object_handle{obj, std::move(zone)};
  } catch (...) {
    rethrow(size);
  }
}

msgpack::object_handle unpack_bounded(const char* data, std::size_t size) {
  std::size_t offset = 0;
  auto handle = unpack_bounded(data, size, offset);
  expect_end(offset, size);
  return handle;
}

msgpack::object unpack_bounded(msgpack::zone& zone, const char* data, std::size_t size,
                               std::size_t& offset, std::uint32_t outer_levels) {
  bool referenced = false;
  auto in_place = [](msgpack::type::object_type, std::size_t, void*) { return true; };
  try {
    return msgpack::unpack(zone, data, size, offset, referenced, in_place, nullptr,
                           limit_for(size, outer_levels));
  } catch (...) {
    rethrow(size);
  }
}

msgpack::object unpack_bounded(msgpack::zone& zone, const char* data, std::size_t size,
                               std::uint32_t outer_levels) {
  std::size_t offset = 0;
  auto obj = unpack_bounded(zone, data, size, offset, outer_levels);
  expect_end(offset, size);
  return obj;
}

} // namespace mproc::wire
