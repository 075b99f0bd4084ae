// A block of shared memory behind a memfd: what every cross-process primitive (lock.hpp,
// semaphore.hpp, event.hpp, condition.hpp, barrier.hpp, shared_value.hpp, shared_array.hpp,
// shared_memory.hpp) lives in. Internal to actors/.
//
// No name in /dev/shm: the memory exists while a process maps it or holds its descriptor,
// so nothing is left behind when any process, the root included, dies by SIGKILL. It travels
// to another process on this machine as a descriptor beside the frame (SCM_RIGHTS, a copy:
// the sender keeps its own), as a spawn argument or in a message; never to another machine
// nor inside a queue item.
//
// The block starts with a header naming what it holds, so a descriptor sent as the wrong
// kind is refused rather than misread; its size is sealed (F_SEAL_SHRINK/GROW), so no holder
// can shrink it under the others (which would turn their next access into SIGBUS).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "mproc/serialization/codec.hpp"

namespace mproc::detail {

enum class segment_kind : std::uint32_t {
  memory = 1,
  lock,
  rlock,
  semaphore,
  event,
  condition,
  barrier,
  value,
  array,
};

class segment {
public:
  // A new zero-filled block of `payload_size` bytes (throws mproc::error on failure).
  // `type_tag` tells apart blocks of one kind holding different C++ types (values, arrays).
  static std::shared_ptr<segment> create(segment_kind kind, std::size_t payload_size,
                                         std::uint64_t type_tag = 0);
  // Maps a block that arrived as `fd` (taken: closed on failure). Null, with `why` set, when
  // it is not a sealed block of `kind` and `type_tag`.
  static std::shared_ptr<segment> adopt(int fd, segment_kind kind,
                                        std::optional<std::uint64_t> type_tag,
                                        std::string& why);
  ~segment();
  segment(const segment&) = delete;
  segment& operator=(const segment&) = delete;

  void* payload() const { return payload_; }
  std::size_t payload_size() const { return payload_size_; }
  int fd() const { return fd_; }
  const void* base() const { return base_; }

private:
  // The segment holding the mapping and the descriptor; both go if it cannot be made.
  static std::shared_ptr<segment> own(int fd, void* base, std::size_t mapped,
                                      std::size_t payload_size);
  segment(int fd, void* base, std::size_t mapped, std::size_t payload_size);

  int fd_;
  void* base_;
  std::size_t mapped_;
  void* payload_;
  std::size_t payload_size_;
};

// The payload as a T (placed there, zero-initialised, at creation).
template <class T>
T& payload_as(const segment& s) {
  return *static_cast<T*>(s.payload());
}

// A stable tag for a C++ type, for type_tag: FNV-1a of its name.
std::uint64_t type_tag_of(const std::string& type_name);

// On the wire a block is [descriptor index, kind]; the descriptor goes beside the frame.
// Encoding fails (st.fail) where no descriptor can go: another machine, a queue item.
void encode_segment(wire::packer& pk, const segment* s, wire::codec_state& st,
                    const char* what);
// Null (st.fail) unless a block of `kind`, `type_tag` (nullopt: any) and at least
// `min_payload` bytes came.
std::shared_ptr<segment> decode_segment(const msgpack::object& o, wire::codec_state& st,
                                        segment_kind kind, std::optional<std::uint64_t> type_tag,
                                        std::size_t min_payload, const char* what);
// The kind a block on the wire says it is (checked again when it is adopted); nullopt when
// `o` is not [descriptor, kind].
std::optional<segment_kind> kind_on_wire(const msgpack::object& o);

} // namespace mproc::detail
