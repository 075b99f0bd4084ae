// Queue items and queue handles on the wire: the per-thread buffer items are encoded into,
// the view an item is decoded through, and a handle sent to another process.
#include "mproc/actors/queue.hpp"

#include "mproc/runtime/caf_types.hpp"
#include "mproc/runtime/node.hpp"

namespace mproc::detail {

void throw_bad_item(const std::string& why) {
  throw error(make_error(errc::bad_message, why), "a queue item cannot be decoded: " + why);
}

namespace {

// Larger buffers are freed after use rather than kept by the thread.
constexpr std::size_t kept_item_buffer = 1u << 20;

thread_local wire::buffer item_encode_buffer;

struct thread_zone {
  msgpack::zone zone;
  bool in_use = false;
};

thread_zone& this_thread_zone() {
  thread_local thread_zone z;
  return z;
}

} // namespace

wire::buffer& item_buffer() {
  item_encode_buffer.clear();
  return item_encode_buffer;
}

void trim_item_buffer() {
  if (item_encode_buffer.size() > kept_item_buffer)
    item_encode_buffer = wire::buffer{};
}

item_view::item_view(std::string_view b) {
  auto& mine = this_thread_zone();
  own_zone_ = mine.in_use;
  zone_ = own_zone_ ? new msgpack::zone : &mine.zone;
  mine.in_use = true;
  try {
    object_ = wire::unpack_bounded(*zone_, b.data(), b.size());
  } catch (const std::exception& e) {
    release();
    throw_bad_item(e.what());
  }
}

item_view::~item_view() {
  release();
}

void item_view::release() noexcept {
  if (own_zone_) {
    delete zone_;
  } else {
    zone_->clear();
    this_thread_zone().in_use = false;
  }
}

void encode_queue_ref(wire::packer& pk, const queue_core& q, wire::codec_state& st) {
  // The queue may be used by the receiver after every handle here is gone: it lives as long
  // as its node (a no-op where q is a reference to another process's queue).
  this_node().keep_alive(q.actor());
  pk.pack_array(2);
  wire::codec<caf::actor>::encode(pk, q.actor(), st);
  pk.pack(static_cast<std::uint64_t>(q.maxsize()));
}

bool decode_queue_ref(const msgpack::object& o, queue_core& out, wire::codec_state& st) {
  if (o.type != msgpack::type::ARRAY || o.via.array.size != 2)
    return wire::type_mismatch(st, "queue [actor, maxsize]", o);
  caf::actor q;
  std::uint64_t maxsize = 0;
  if (!wire::codec<caf::actor>::decode(o.via.array.ptr[0], q, st)
      || !wire::codec<std::uint64_t>::decode(o.via.array.ptr[1], maxsize, st))
    return false;
  if (!q)
    return st.fail("a queue reference names no actor");
  out = queue_core{std::move(q), static_cast<std::size_t>(maxsize)};
  return true;
}

} // namespace mproc::detail
