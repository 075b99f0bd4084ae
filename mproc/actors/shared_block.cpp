#include "mproc/actors/shared_block.hpp"

#include <new>

#include "mproc/actors/guard.hpp"
#include "mproc/actors/segment.hpp"
#include "mproc/runtime/log.hpp"
#include "mproc/serialization/type_registry.hpp"

namespace mproc::detail {

namespace {

// The payload: this layout, then the rlock (used or not), then the data, each on its own
// cache lines so that the lock's word and the data do not share one.
struct layout {
  std::uint32_t synchronized;
  std::uint32_t unused;
  std::uint64_t data_size;
};
constexpr std::size_t lock_offset = 64;
constexpr std::size_t data_offset = lock_offset + rlock_size;

segment_kind segment_kind_of(shared_block::kind k) {
  return k == shared_block::kind::value ? segment_kind::value : segment_kind::array;
}

} // namespace

shared_block::shared_block(kind k, const char* type, std::size_t bytes, bool synchronized) {
  seg_ = segment::create(segment_kind_of(k), data_offset + bytes,
                         type_tag_of(wire::demangle(type)));
  auto* base = static_cast<char*>(seg_->payload());
  new (base) layout{synchronized ? 1u : 0u, 0, bytes};
  if (synchronized)
    lock_ = rlock_at(seg_, base + lock_offset, true);
  data_ = base + data_offset;
  size_ = bytes;
}

const rlock& shared_block::lock() const {
  if (!lock_)
    throw_misuse(seg_ ? "made without a lock (synchronized = false)" : "an empty handle");
  return *lock_;
}

std::optional<guard<rlock>> shared_block::hold(const char* what) const {
  if (!synchronized())
    return std::nullopt;
  auto held = lock().hold();
  if (held.owner_died())
    log::warn("the lock of a ", what, " was taken from a process that died holding it: ",
              "its data may be half-written (get_lock().acquire() tells owner_died)");
  return held;
}

void shared_block::encode(wire::packer& pk, wire::codec_state& st, const char* what) const {
  encode_segment(pk, seg_.get(), st, what);
}

bool shared_block::decode(const msgpack::object& o, wire::codec_state& st, kind k,
                          const char* type, std::size_t element_size, const char* what) {
  auto seg = decode_segment(o, st, segment_kind_of(k), type_tag_of(wire::demangle(type)),
                            data_offset, what);
  if (!seg)
    return false;
  auto* base = static_cast<char*>(seg->payload());
  const auto& l = *static_cast<const layout*>(static_cast<void*>(base));
  if (l.data_size != seg->payload_size() - data_offset || l.data_size % element_size != 0
      || l.synchronized > 1)
    return st.fail(std::string{what} + ": its shared memory is corrupt");
  if (l.synchronized != 0)
    lock_ = rlock_at(seg, base + lock_offset, false);
  data_ = base + data_offset;
  size_ = l.data_size;
  seg_ = std::move(seg);
  return true;
}

bool decode_block_lock(const msgpack::object& o, wire::codec_state& st, shared_block::kind k,
                       std::optional<rlock>& out) {
  auto seg = decode_segment(o, st, segment_kind_of(k), std::nullopt, data_offset, "rlock");
  if (!seg)
    return false;
  auto* base = static_cast<char*>(seg->payload());
  if (static_cast<const layout*>(static_cast<void*>(base))->synchronized != 1)
    return st.fail("rlock: the Value or Array it came from has no lock");
  out = rlock_at(std::move(seg), base + lock_offset, false);
  return true;
}

std::string shared_tag(const char* prefix, const char* type) {
  return std::string{prefix} + "<" + wire::demangle(type) + ">";
}

} // namespace mproc::detail
