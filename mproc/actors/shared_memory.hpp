// shared_memory: Python's multiprocessing.shared_memory.SharedMemory, a block of bytes every
// process that holds a handle sees.
//
//   mproc::shared_memory block{1 << 20};        // 1 MiB, zeroed
//   node.spawn_process("fill", {}, block);      // the child writes into block.buf()
//
//   auto named = mproc::shared_memory::create(node, "frames", 4096);  // create=True
//   auto same = mproc::shared_memory::attach(node, "frames");         // elsewhere, by name
//   named.unlink();                                     // the name goes, the memory stays
//
// It lives in a memfd passed to other processes as a descriptor (actors/segment.hpp), so it
// leaves nothing in /dev/shm, whoever dies: the memory goes with the last process holding
// it. A name is not a file either: it is registered in the creating process's node
// (node::register_name), found by attach() from that process and the processes below it
// (from every process of the tree when the root created it), and gone when unlink() is
// called or the creating process ends — what Python's resource tracker tries to do for a
// /dev/shm file, and cannot when the creator is killed. Processes outside the tree cannot
// attach by name.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <span>
#include <string>

#include <caf/actor_addr.hpp>
#include <caf/allowed_unsafe_message_type.hpp>

#include "mproc/serialization/codec.hpp"

namespace mproc {

class node;

namespace detail {
class segment;
}

class shared_memory {
public:
  // `size` zeroed bytes. Throws mproc::error: bad_arguments for a size of 0 (as Python's
  // ValueError), or on failure (no memory).
  explicit shared_memory(std::size_t size);

  // Empty after close(); the bytes stay valid while this handle is open.
  std::span<std::byte> buf() const;
  std::size_t size() const;
  // This handle lets go (Python's close()); copies of it, here and elsewhere, keep theirs.
  void close() { seg_.reset(); }

  // A new block of `size` bytes that other processes find by `name`. Throws mproc::error
  // bad_arguments when the name is taken here.
  static shared_memory create(node& n, const std::string& name, std::size_t size);
  // The block created as `name` in this process or an ancestor. Throws mproc::error
  // no_such_actor when there is none, timeout.
  static shared_memory attach(node& n, const std::string& name,
                              std::chrono::milliseconds timeout = std::chrono::seconds{5});
  // The name, for a handle made by create or attach ("" otherwise: a name does not travel).
  const std::string& name() const { return name_; }
  // The name goes, from any process that created or attached it: attach fails from its
  // return on (from another process than the creating one: once the creating process has
  // answered, within 5 s; one that does not, stopped say, drops the name when it reads the
  // request). The memory stays for every holder. Throws mproc::error bad_arguments for a
  // handle without a name.
  void unlink();

private:
  friend struct wire::codec<shared_memory>;
  explicit shared_memory(std::shared_ptr<detail::segment> seg) : seg_{std::move(seg)} {}

  std::shared_ptr<detail::segment> seg_;
  std::string name_;
  // The actor answering attach, for a named handle; weak, so that a handle outliving the
  // node keeps nothing of it alive (the node ends the actor at its shutdown).
  caf::actor_addr holder_;
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
