// What every Manager proxy holds: the manager actor, the object's id there, and the timeout
// of each call. One call is one request (actors/manager_protocol.hpp).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <caf/actor.hpp>
#include <caf/atom.hpp>

#include "mproc/actors/manager_protocol.hpp"
#include "mproc/actors/manager_values.hpp"
#include "mproc/serialization/value.hpp"

namespace mproc::detail {

class manager_ref {
public:
  using millis = std::chrono::milliseconds;

  manager_ref() = default;
  // `owner`, when given, is what keeps the manager running (the starting handle's share):
  // held by every copy in this process, never sent.
  manager_ref(caf::actor server, std::uint64_t id, millis timeout,
              std::shared_ptr<const void> owner = {})
    : server_{std::move(server)}, id_{id}, timeout_{clamped(timeout)}, owner_{std::move(owner)} {}

  // Runs `op` on the object. Throws mproc::error: the manager's answer (no_such_key,
  // out_of_range, ...), timeout, or — the manager gone — process_exited, link_lost,
  // no_such_actor, with a text that says so.
  manager_reply call(caf::atom_value op, manager_args args) const;
  // The same for a call whose answer is one value.
  bytes call_one(caf::atom_value op, manager_args args) const;
  // A call that may wait in the manager up to `wait` (nullopt: for ever): it is given that
  // long on top of the proxy's timeout.
  manager_reply call_waiting(caf::atom_value op, manager_args args,
                             std::optional<millis> wait) const;

  // How many calls wait on the object in the manager (an event's waiters, a lock's or a
  // queue's line), for introspection and tests.
  std::size_t waiting() const;

  const caf::actor& server() const { return server_; }
  std::uint64_t id() const { return id_; }
  millis timeout() const { return timeout_; }
  void timeout(millis t) { timeout_ = clamped(t); }

private:
  manager_reply request(caf::atom_value op, manager_args args, millis timeout) const;
  // Never negative; a century or more is for ever (and would overflow in nanoseconds).
  static millis clamped(millis t);

  caf::actor server_;
  std::uint64_t id_ = 0;
  millis timeout_{10'000};
  std::shared_ptr<const void> owner_;
};

// A proxy on the wire: [actor, object id, timeout in ms].
void encode_manager_ref(wire::packer& pk, const manager_ref& ref, wire::codec_state& st);
bool decode_manager_ref(const msgpack::object& o, manager_ref& out, wire::codec_state& st);

// The codec of every proxy (a friend of each, for its private constructor from a ref).
template <class Proxy>
struct proxy_codec {
  static void encode(wire::packer& pk, const Proxy& x, wire::codec_state& st) {
    encode_manager_ref(pk, x.ref(), st);
  }
  static bool decode(const msgpack::object& o, Proxy& out, wire::codec_state& st) {
    manager_ref ref;
    if (!decode_manager_ref(o, ref, st))
      return false;
    out = Proxy{std::move(ref)};
    return true;
  }
};

template <class... Ts>
manager_args pack_values(const Ts&... xs) {
  return manager_args{pack_value<stored_t<Ts>>(xs)...};
}

template <class T>
std::vector<T> unpack_values(const manager_reply& reply) {
  std::vector<T> out;
  out.reserve(reply.size());
  for (auto& b : reply)
    out.push_back(unpack_value<T>(b));
  return out;
}

// A wait's timeout as the manager reads it: milliseconds, or nil for ever.
inline bytes pack_wait(std::optional<std::chrono::milliseconds> timeout) {
  return pack_value(timeout ? std::optional<std::int64_t>{timeout->count()} : std::nullopt);
}

// [k0, v0, k1, v1, ...] as pairs.
template <class K, class V>
std::vector<std::pair<K, V>> unpack_pairs(const manager_reply& reply) {
  std::vector<std::pair<K, V>> out;
  out.reserve(reply.size() / 2);
  for (std::size_t i = 0; i + 1 < reply.size(); i += 2)
    out.emplace_back(unpack_value<K>(reply[i]), unpack_value<V>(reply[i + 1]));
  return out;
}

// The reply's values as a map_t / array_t, for printing what a proxy refers to.
value reply_as_map(const manager_reply& reply);
value reply_as_array(const manager_reply& reply);

} // namespace mproc::detail
