// Queue items travelling together: their encodings back to back in one buffer and where each
// one ends. A batch costs two allocations per hop, not one per item (a vector of bytes did:
// a third of a producer-consumer profile went to malloc and free).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

#include <caf/allowed_unsafe_message_type.hpp>

#include "mproc/serialization/bytes.hpp"
#include "mproc/serialization/codec.hpp"

namespace mproc::detail {

class item_batch {
public:
  std::size_t size() const { return ends_.size(); }
  bool empty() const { return ends_.empty(); }
  std::size_t byte_size() const { return data_.size(); }
  std::string_view operator[](std::size_t i) const {
    std::size_t from = start_of(i);
    return {data_.data() + from, ends_[i] - from};
  }
  // Bytes of items [from, to).
  std::size_t bytes_between(std::size_t from, std::size_t to) const {
    return from >= to ? 0 : ends_[to - 1] - start_of(from);
  }

  // Throws mproc::error bad_message above 4 GiB (offsets are 32 bits).
  void append(std::string_view item);
  // Items [from, to) of `other`, in one copy.
  void append(const item_batch& other, std::size_t from, std::size_t to);
  void reserve(std::size_t items, std::size_t bytes);
  void clear() {
    data_.clear();
    ends_.clear();
  }

  // The wire form; decode checks every offset (docs/queue.md, "Messages for actors").
  const bytes& data() const { return data_; }
  const std::vector<std::uint32_t>& ends() const { return ends_; }
  bool assign(bytes data, std::vector<std::uint32_t> ends, std::string& why);

private:
  std::size_t start_of(std::size_t i) const { return i == 0 ? 0 : ends_[i - 1]; }
  void check_room(std::size_t more) const;
  void room_for_ends(std::size_t more);  // grows geometrically: no allocation per item

  bytes data_;
  std::vector<std::uint32_t> ends_;
};

// A batch stops growing at this many bytes (at least one item goes in every batch): below
// the smallest max_frame a node may set (1 MiB), so that a batch of large items crosses any
// link whenever each item does, and far from the 4 GiB its 32-bit offsets can address.
// Small items fill 512 of them long before.
inline constexpr std::size_t max_batch_bytes = std::size_t{512} << 10;

// Items [next, end) of a batch shared by whoever holds it: what a consumer's process has
// fetched and not taken yet, or what get_many hands out.
struct item_run {
  std::shared_ptr<const item_batch> batch;
  std::size_t next = 0;
  std::size_t end = 0;
  std::uint64_t take = 0;  // which get handed it out (queue_client's count), for untake
  std::uint64_t first = 0; // in a process's inbox: the place of the batch's item 0 among all
                           // the queue handed its agent (what a recall gives back is named so)

  std::size_t size() const { return end - next; }
  std::string_view operator[](std::size_t i) const { return (*batch)[next + i]; }
};

} // namespace mproc::detail

// On the wire: [data: bin, ends: bin], ends the little-endian u32 end offset of each item.
template <>
struct mproc::wire::codec<mproc::detail::item_batch> {
  static std::string name() { return "items"; }
  static void encode(packer& pk, const mproc::detail::item_batch& b, codec_state& st);
  static bool decode(const msgpack::object& o, mproc::detail::item_batch& out, codec_state& st);
};

template <>
struct caf::allowed_unsafe_message_type<mproc::detail::item_batch> : std::true_type {};
