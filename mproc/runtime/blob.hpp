// mproc::blob: immutable bytes for large payloads, sent to a process on this machine without
// a copy.
//
//   mproc::blob_writer w{64 << 20};             // the memory the bytes will be sent from
//   std::memcpy(w.data(), source, w.size());    // written once
//   mproc::blob data = std::move(w).finish();   // read-only from now on
//   node.request<std::int64_t>(child, 10s, data);   // the child maps the same pages
//
// From `shared_min` bytes on, a blob lives in shared memory (a memfd) that no holder can
// resize; crossing to a local process passes its descriptor beside the frame (SCM_RIGHTS) and
// the receiver maps it read-only: nothing is copied, whatever the size (node_options::max_frame
// does not apply). A smaller blob lives on the heap and travels inside the frame, as bytes.
// To another machine, inside a queue item, or beyond the 16th descriptor of one message, a
// blob travels inside the frame (and counts against max_frame). Copying a blob copies a
// reference.
//
// The shared memory is reused: once no process holds a blob any more, its writer's process
// writes a later blob of about its size into the same memory, and a receiver that mapped it
// reads the new blob through the mapping it has (docs/architecture.md says why: a new mapping
// costs more than a copy on a VM). A process keeps up to 64 such segments, 256 MiB, of its own
// (needing room, it leaves out the least recently used) and as many received; once the
// process has a node, a thread of its lets go of those no blob of the process held for 10 s
// (MPROC_BLOB_IDLE_MS). A blob above 256 MiB gets a memfd of its own, sealed against writing. A blob does not survive a plain
// fork() (mproc's processes start from a fork server or exec): the forked copy is not counted
// as a holder, and the memory may be written again under it.
//
// A shared blob keeps its descriptor open while any copy of it lives, so that it can be sent
// on. The node raises the soft descriptor limit to the hard one; a process out of
// descriptors all the same loses the message naming a blob (bad_message), not its link.
// Use mproc::bytes (std::vector<char>) for bytes a receiver wants to change.
#pragma once

#include <cstddef>
#include <memory>
#include <string_view>

#include <caf/allowed_unsafe_message_type.hpp>

#include "mproc/serialization/bytes.hpp"
#include "mproc/serialization/codec.hpp"

namespace mproc {

namespace detail {
class blob_memory;
}

class blob {
public:
  static constexpr std::size_t shared_min = std::size_t{256} << 10;

  blob() = default;
  blob(const char* data, std::size_t size);  // a copy
  explicit blob(std::string_view data) : blob(data.data(), data.size()) {}
  explicit blob(const bytes& data) : blob(data.data(), data.size()) {}

  const char* data() const;
  std::size_t size() const;
  bool empty() const { return size() == 0; }
  std::string_view view() const { return {data(), size()}; }
  // No begin()/end(): CAF would take a blob for a container to serialise element by element.
  bytes to_bytes() const { return bytes(data(), data() + size()); }
  // True when the bytes live in shared memory (a memfd): sending copies nothing locally.
  bool shared() const;

  friend bool operator==(const blob& a, const blob& b) { return a.view() == b.view(); }

private:
  friend class blob_writer;
  friend struct wire::codec<blob>;
  explicit blob(std::shared_ptr<const detail::blob_memory> mem) : mem_{std::move(mem)} {}

  std::shared_ptr<const detail::blob_memory> mem_;
};

// Builds a blob in place: the bytes are written once, where they will be sent from. What
// data() holds before it is written is unspecified (an earlier blob's bytes, or zeros).
class blob_writer {
public:
  explicit blob_writer(std::size_t size);  // throws mproc::error when no memory can be had
  ~blob_writer();
  blob_writer(blob_writer&&) noexcept;
  blob_writer& operator=(blob_writer&&) noexcept;

  char* data();
  std::size_t size() const;
  // The blob; the writer is empty afterwards (data() null, size() 0).
  blob finish() &&;

private:
  std::unique_ptr<detail::blob_memory> mem_;
};

} // namespace mproc

// On the wire: bin (inside the frame), or [descriptor index, size] for a blob in a sealed
// memfd, or [descriptor index, size, true] for one in a reusable segment, whose memfd travels
// beside the frame (docs/protocol.md, "Descriptors" and "Blob segments").
template <>
struct mproc::wire::codec<mproc::blob> {
  static std::string name() { return "blob"; }
  static void encode(packer& pk, const mproc::blob& b, codec_state& st);
  static bool decode(const msgpack::object& o, mproc::blob& out, codec_state& st);
};

template <>
struct caf::allowed_unsafe_message_type<mproc::blob> : std::true_type {};
