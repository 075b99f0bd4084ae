#include "actors/shared_memory.hpp"

#include "actors/segment.hpp"
#include "runtime/message_types.hpp"

namespace mproc {

namespace {
[[maybe_unused]] const bool registered = detail::register_message_type<shared_memory>();
}

shared_memory::shared_memory(std::size_t size)
    : seg_{detail::segment::create(detail::segment_kind::memory, size == 0 ? 1 : size)} {}

std::span<std::byte> shared_memory::buf() const {
  if (!seg_)
    return {};
  return {static_cast<std::byte*>(seg_->payload()), seg_->payload_size()};
}

std::size_t shared_memory::size() const { return seg_ ? seg_->payload_size() : 0; }

} // namespace mproc

namespace mproc::wire {

shared_memory codec<shared_memory>::blank() { return shared_memory{nullptr}; }

void codec<shared_memory>::encode(packer& pk, const shared_memory& m, codec_state& st) {
  mproc::detail::encode_segment(pk, m.seg_.get(), st, "shared_memory");
}

bool codec<shared_memory>::decode(const msgpack::object& o, shared_memory& out, codec_state& st) {
  auto seg = mproc::detail::decode_segment(o, st, mproc::detail::segment_kind::memory, 0, 1,
                                           "shared_memory");
  if (!seg)
    return false;
  out = shared_memory{std::move(seg)};
  return true;
}

} // namespace mproc::wire
