#include "mproc/actors/manager_ref.hpp"

#include <algorithm>

#include <caf/make_message.hpp>

#include "mproc/actors/guard.hpp"
#include "mproc/runtime/caf_types.hpp"
#include "mproc/runtime/node.hpp"

namespace mproc::detail {

namespace {

// The manager's process is gone: every later call fails the same way at once. (An ended
// manager actor, or a released object, is no_such_actor, with the manager's own text.)
bool manager_gone(const caf::error& e) {
  auto code = code_of(e);
  return code == errc::process_exited || code == errc::link_lost || code == errc::node_shutdown;
}

} // namespace

manager_ref::millis manager_ref::clamped(millis t) {
  return std::clamp(t, millis{0}, millis{forever_beyond});
}

manager_reply manager_ref::call(caf::atom_value op, manager_args args) const {
  return request(op, std::move(args), timeout_);
}

std::size_t manager_ref::waiting() const {
  return unpack_value<std::uint64_t>(call_one(caf::atom("waiting"), {}));
}

manager_reply manager_ref::call_waiting(caf::atom_value op, manager_args args,
                                        std::optional<millis> wait) const {
  // The manager answers at the wait's end: the margin covers the way there and back, and is
  // never short, so that a grant or an item does not reach a caller that gave up.
  auto margin = std::max<millis>(timeout_, std::chrono::seconds{1});
  // A negative wait is no wait, here as at the manager: with it the call's own time would
  // run out before the manager's at once answer came (a lock granted to a caller told no).
  auto total = wait ? clamped(clamped(*wait) + margin) : millis{forever_beyond};
  return request(op, std::move(args), total);
}

manager_reply manager_ref::request(caf::atom_value op, manager_args args, millis timeout) const {
  if (!server_)
    throw_misuse("an empty manager proxy (default-made, or moved from)");
  caf::message reply;
  try {
    reply = this_node().request_message(
      server_, caf::make_message(m_call_atom::value, id_, op, std::move(args)), timeout);
  } catch (const error& e) {
    if (!manager_gone(e.reason()))
      throw;
    throw error(e.reason(), std::string{"the manager is gone: "} + e.what());
  }
  if (reply.empty())
    return {};
  if (!reply.match_elements<manager_reply>())
    throw_manager_codec("a manager's answer", "not a vec<bytes>");
  return reply.get_as<manager_reply>(0);
}

bytes manager_ref::call_one(caf::atom_value op, manager_args args) const {
  auto reply = call(op, std::move(args));
  if (reply.size() != 1)
    throw_manager_codec("a manager's answer", std::to_string(reply.size()) + " values, not 1");
  return std::move(reply[0]);
}

void encode_manager_ref(wire::packer& pk, const manager_ref& ref, wire::codec_state& st) {
  pk.pack_array(3);
  wire::codec<caf::actor>::encode(pk, ref.server(), st);
  pk.pack(ref.id());
  pk.pack(static_cast<std::int64_t>(ref.timeout().count()));
}

bool decode_manager_ref(const msgpack::object& o, manager_ref& out, wire::codec_state& st) {
  if (o.type != msgpack::type::ARRAY || o.via.array.size != 3)
    return wire::type_mismatch(st, "manager proxy [actor, id, timeout ms]", o);
  caf::actor server;
  std::uint64_t id = 0;
  std::int64_t timeout = 0;
  if (!wire::codec<caf::actor>::decode(o.via.array.ptr[0], server, st)
      || !wire::codec<std::uint64_t>::decode(o.via.array.ptr[1], id, st)
      || !wire::codec<std::int64_t>::decode(o.via.array.ptr[2], timeout, st))
    return false;
  if (!server)
    return st.fail("a manager proxy names no actor");
  out = manager_ref{std::move(server), id, manager_ref::millis{timeout}};
  return true;
}

value reply_as_map(const manager_reply& reply) {
  value::map_t out;
  for (auto& [k, v] : unpack_pairs<value, value>(reply))
    out.emplace_back(std::move(k), std::move(v));
  return out;
}

value reply_as_array(const manager_reply& reply) { return unpack_values<value>(reply); }

} // namespace mproc::detail
