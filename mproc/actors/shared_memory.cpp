#include "mproc/actors/shared_memory.hpp"

#include <algorithm>

#include <caf/actor_cast.hpp>
#include <caf/actor_system.hpp>
#include <caf/atom.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/send.hpp>

#include "mproc/actors/guard.hpp"
#include "mproc/actors/segment.hpp"
#include "mproc/runtime/message_types.hpp"
#include "mproc/runtime/node.hpp"

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

namespace {

std::string registered_name(const std::string& name) { return "shared_memory:" + name; }

// Sent to a name's holder by unlink() from any process (an exit message does not cross).
using unlink_atom = caf::atom_constant<caf::atom("shm_unlink")>;

// Holds a named block and hands it to whoever attaches, until unlinked. The name goes with
// it (register_name drops a name whose actor ended).
caf::behavior name_holder(caf::event_based_actor* self, shared_memory block) {
  return {[block](caf::get_atom) { return block; }, [self](unlink_atom) { self->quit(); }};
}

} // namespace

shared_memory shared_memory::create(node& n, const std::string& name, std::size_t size) {
  shared_memory block{size};
  auto holder = n.system().spawn(name_holder, block);
  try {
    n.register_name(registered_name(name), holder);
  } catch (...) {
    caf::anon_send_exit(holder, caf::exit_reason::user_shutdown);
    throw;
  }
  n.keep_alive(holder);  // until unlink, or the node's shutdown ends it
  block.name_ = name;
  block.holder_ = holder.address();
  return block;
}

shared_memory shared_memory::attach(node& n, const std::string& name,
                                    std::chrono::milliseconds timeout) {
  timeout = std::min(timeout, std::chrono::milliseconds{forever_beyond});
  auto holder = n.lookup(registered_name(name), timeout);
  auto block = n.request<shared_memory>(holder, timeout, caf::get_atom::value);
  block.name_ = name;
  block.holder_ = holder.address();
  return block;
}

void shared_memory::unlink() {
  if (!holder_)
    detail::throw_misuse("unlink: this shared_memory handle has no name");
  auto& n = mproc::this_node();
  n.unregister_name(registered_name(name_), holder_);
  auto holder = caf::actor_cast<caf::actor>(holder_);
  if (!holder) {
    // Attached in another process: the proxy the attach made went with it. Found again by
    // name: as Python's shm_unlink, the name goes, whichever block holds it now.
    try {
      holder = n.lookup(registered_name(name_), std::chrono::seconds{5});
    } catch (const error& e) {
      if (e.code() != errc::no_such_actor)
        throw;
    }
  }
  if (holder)
    caf::anon_send(holder, unlink_atom::value);
}

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
