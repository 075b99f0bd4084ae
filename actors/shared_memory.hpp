// shared_memory: Python's multiprocessing.shared_memory.SharedMemory without the name: a
// block of bytes every process of the tree that holds a handle sees.
//
//   mproc::shared_memory block{1 << 20};        // 1 MiB, zeroed
//   node.spawn_process("fill", {}, block);      // the child writes into block.buf()
//
// It lives in a memfd passed to other processes as a descriptor (actors/segment.hpp), so it
// needs no name and leaves nothing in /dev/shm, whoever dies: the memory goes with the last
// process holding it. What Python's SharedMemory(name=...) is for — reaching a block from a
// process that was not handed it — is not offered; pass the handle as an argument or in a
// message instead.
#pragma once

#include <cstddef>
#include <memory>
#include <span>

#include <caf/allowed_unsafe_message_type.hpp>

#include "serialization/codec.hpp"

namespace mproc {

namespace detail {
class segment;
}

class shared_memory {
public:
  // `size` zeroed bytes (at least 1). Throws mproc::error on failure (no memory).
  explicit shared_memory(std::size_t size);

  // Empty after close(); the bytes stay valid while this handle is open.
  std::span<std::byte> buf() const;
  std::size_t size() const;
  // This handle lets go (Python's close()); copies of it, here and elsewhere, keep theirs.
  void close() { seg_.reset(); }

private:
  friend struct wire::codec<shared_memory>;
  explicit shared_memory(std::shared_ptr<detail::segment> seg) : seg_{std::move(seg)} {}

  std::shared_ptr<detail::segment> seg_;
};

} // namespace mproc

template <>
struct mproc::wire::codec<mproc::shared_memory> {
  static std::string name() { return "shared_memory"; }
  static mproc::shared_memory blank();
  static void encode(packer& pk, const mproc::shared_memory& m, codec_state& st);
  static bool decode(const msgpack::object& o, mproc::shared_memory& out, codec_state& st);
};

template <>
struct caf::allowed_unsafe_message_type<mproc::shared_memory> : std::true_type {};
