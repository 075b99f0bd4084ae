#include "mproc/actors/shared_memory.hpp"

#include <algorithm>

#include <caf/actor_cast.hpp>
#include <caf/actor_system.hpp>
#include <caf/atom.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/send.hpp>

#include "mproc/actors/guard.hpp"
#include "mproc/actors/segment.hpp"
#include "mproc/runtime/deadline.hpp"
#include "mproc/runtime/message_types.hpp"
#include "mproc/runtime/node.hpp"

namespace mproc {

namespace {
[[maybe_unused]] const bool registered = detail::register_message_type<shared_memory>();
}

namespace {
// Python's SharedMemory refuses a size of zero (ValueError) rather than round it up.
std::size_t checked_size(std::size_t size) {
  if (size == 0)
    detail::throw_misuse("a shared memory block needs a size above 0");
  return size;
}
} // namespace

shared_memory::shared_memory(std::size_t size)
    : seg_{detail::segment::create(detail::segment_kind::memory, checked_size(size))} {}

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

// Holds a named block and hands it to whoever attaches, until unlinked. An unlink from
// another process is answered once the name is gone, so that the caller's next create() or
// attach() of the name finds it gone, as after Python's shm_unlink.
caf::behavior name_holder(caf::event_based_actor* self, shared_memory block, std::string name) {
  return {
    [block](caf::get_atom) { return block; },
    [self, name](unlink_atom) {
      mproc::this_node().unregister_name(name, self->address());
      self->quit();
      return true;
    },
  };
}

// How long an unlink from another process waits for the name's holder.
constexpr std::chrono::seconds unlink_timeout{5};

} // namespace

shared_memory shared_memory::create(node& n, const std::string& name, std::size_t size) {
  shared_memory block{size};
  auto holder = n.system().spawn(name_holder, block, registered_name(name));
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
  // One timeout for both steps: a stalled creator must not make it count twice.
  auto deadline = deadline_after(timeout);
  auto holder = n.lookup(registered_name(name), timeout);
  auto block = n.request<shared_memory>(holder, time_left(deadline), caf::get_atom::value);
  block.name_ = name;
  block.holder_ = holder.address();
  return block;
}

void shared_memory::unlink() {
  if (!holder_)
    detail::throw_misuse("unlink: this shared_memory handle has no name");
  auto& n = mproc::this_node();
  if (n.unregister_name(registered_name(name_), holder_)) {  // created here: gone already
    caf::anon_send(caf::actor_cast<caf::actor>(holder_), unlink_atom::value);
    return;
  }
  // Attached in another process. Found again by name (the proxy the attach made may be
  // gone): as Python's shm_unlink, the name goes, whichever block holds it now.
  caf::actor holder;
  auto deadline = deadline_after(unlink_timeout);
  try {
    holder = n.lookup(registered_name(name_), unlink_timeout);
    n.request<bool>(holder, time_left(deadline), unlink_atom::value);
  } catch (const error& e) {
    // No holder, or it ended meanwhile (its node with it): the name is gone either way. A
    // creating process that does not answer in time (stopped): the name goes when it reads
    // the request. Where this thread cannot wait (mproc's I/O thread): the same, unasked.
    auto code = e.code();
    if (holder && code == errc::protocol_error)
      caf::anon_send(holder, unlink_atom::value);
    else if (code != errc::no_such_actor && code != errc::process_exited && code != errc::timeout)
      throw;
  }
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
