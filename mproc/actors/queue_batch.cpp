#include "mproc/actors/queue_batch.hpp"

#include <algorithm>
#include <bit>
#include <cstring>
#include <limits>

#include "mproc/runtime/errors.hpp"
#include "mproc/runtime/message_types.hpp"

namespace mproc::detail {

namespace {

[[maybe_unused]] const bool registered = register_message_type<item_batch>();

constexpr std::size_t max_bytes = std::numeric_limits<std::uint32_t>::max();

std::uint32_t byteswap_if_big(std::uint32_t x) {
  if constexpr (std::endian::native == std::endian::big)
    return __builtin_bswap32(x);
  return x;
}

} // namespace

void item_batch::check_room(std::size_t more) const {
  if (more > max_bytes - data_.size())
    throw error(make_error(errc::bad_message, "queue items of more than 4 GiB in one batch"),
                "a queue batch cannot hold more than 4 GiB");
}

void item_batch::room_for_ends(std::size_t more) {
  if (ends_.capacity() - ends_.size() < more)
    ends_.reserve(std::max({std::size_t{16}, 2 * ends_.capacity(), ends_.size() + more}));
}

// The offset's room first: once the bytes are in, nothing may fail before their end is.
void item_batch::append(std::string_view item) {
  check_room(item.size());
  room_for_ends(1);
  data_.insert(data_.end(), item.begin(), item.end());
  ends_.push_back(static_cast<std::uint32_t>(data_.size()));
}

void item_batch::append(const item_batch& other, std::size_t from, std::size_t to) {
  if (from >= to)
    return;
  std::size_t begin = other.start_of(from);
  std::size_t end = other.ends_[to - 1];
  check_room(end - begin);
  room_for_ends(to - from);
  auto shift = static_cast<std::int64_t>(data_.size()) - static_cast<std::int64_t>(begin);
  data_.insert(data_.end(), other.data_.begin() + static_cast<std::ptrdiff_t>(begin),
               other.data_.begin() + static_cast<std::ptrdiff_t>(end));
  for (std::size_t i = from; i < to; ++i)
    ends_.push_back(static_cast<std::uint32_t>(other.ends_[i] + shift));
}

void item_batch::reserve(std::size_t items, std::size_t bytes) {
  ends_.reserve(items);
  data_.reserve(bytes);
}

bool item_batch::assign(bytes data, std::vector<std::uint32_t> ends, std::string& why) {
  std::uint32_t last = 0;
  for (auto e : ends) {
    if (e < last) {
      why = "item offsets go backwards";
      return false;
    }
    last = e;
  }
  if (last != data.size()) {
    why = "item offsets end at " + std::to_string(last) + ", the data at "
          + std::to_string(data.size());
    return false;
  }
  data_ = std::move(data);
  ends_ = std::move(ends);
  return true;
}

} // namespace mproc::detail

namespace mproc::wire {

using mproc::detail::item_batch;

void codec<item_batch>::encode(packer& pk, const item_batch& b, codec_state& st) {
  pk.pack_array(2);
  pack_raw(pk, st, b.data().data(), b.data().size(), true);
  const auto& ends = b.ends();
  if constexpr (std::endian::native == std::endian::little) {
    pack_raw(pk, st, reinterpret_cast<const char*>(ends.data()), ends.size() * 4, true);
  } else {
    if (ends.size() > mproc::detail::max_bytes / 4)
      return void(st.fail("items: too many offsets"));
    std::vector<std::uint32_t> little(ends.size());
    for (std::size_t i = 0; i < ends.size(); ++i)
      little[i] = mproc::detail::byteswap_if_big(ends[i]);
    // Copied into the frame (never borrowed: `little` ends here).
    pk.pack_bin(static_cast<std::uint32_t>(little.size() * 4));
    pk.pack_bin_body(reinterpret_cast<const char*>(little.data()),
                     static_cast<std::uint32_t>(little.size() * 4));
  }
}

bool codec<item_batch>::decode(const msgpack::object& o, item_batch& out, codec_state& st) {
  if (o.type != msgpack::type::ARRAY || o.via.array.size != 2
      || o.via.array.ptr[0].type != msgpack::type::BIN
      || o.via.array.ptr[1].type != msgpack::type::BIN)
    return type_mismatch(st, "items [data: bin, ends: bin]", o);
  const auto& data = o.via.array.ptr[0].via.bin;
  const auto& ends = o.via.array.ptr[1].via.bin;
  if (ends.size % 4 != 0)
    return st.fail("items: the offsets' length " + std::to_string(ends.size)
                   + " is not a multiple of 4");
  std::vector<std::uint32_t> offsets(ends.size / 4);
  if (ends.size != 0)
    std::memcpy(offsets.data(), ends.ptr, ends.size);
  for (auto& e : offsets)
    e = mproc::detail::byteswap_if_big(e);
  bytes payload;
  assign_large(payload, data.ptr, data.size);
  std::string why;
  if (!out.assign(std::move(payload), std::move(offsets), why))
    return st.fail("items: " + why);
  return true;
}

} // namespace mproc::wire
