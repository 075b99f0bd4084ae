// Envelopes read from a frame's payload (envelope.hpp): each kind's positional fields,
// checked one by one, with an error that names the field; and the error objects that
// answers carry (decode_error).
#include "mproc/serialization/envelope.hpp"

#include "mproc/serialization/envelope_head.hpp"
#include "mproc/serialization/unpack.hpp"

namespace mproc::wire {

namespace {

// Reads the positional fields of one envelope, naming the field in every error.
class fields {
public:
  fields(const msgpack::object& array, kind k, std::string& error)
    : a_(array.via.array), kind_(k), error_(error) {}

  bool count(std::uint32_t n) {
    if (a_.size == n)
      return true;
    error_ = std::string{kind_name(kind_)} + " envelope needs " + std::to_string(n)
             + " fields, got " + std::to_string(a_.size);
    return false;
  }

  template <class T>
  bool get(std::uint32_t i, const char* field, T& out) {
    codec_state st;
    if (codec<T>::decode(a_.ptr[i], out, st))
      return true;
    return fail(field, st.error);
  }

  bool ref(std::uint32_t i, const char* field, actor_ref& out) {
    return get(i, field, out.node) && get(i + 1, field, out.actor);
  }

  bool any(std::uint32_t i, msgpack::object& out) {
    out = a_.ptr[i];
    return true;
  }

  bool array(std::uint32_t i, const char* field, msgpack::object& out) {
    out = a_.ptr[i];
    return out.type == msgpack::type::ARRAY
           || fail(field, std::string{"expected array, got "} + object_kind(out));
  }

  bool error_object(std::uint32_t i, const char* field, error_view& out) {
    std::string why;
    return decode_error(a_.ptr[i], out, why) || fail(field, why);
  }

  bool fail(const char* field, const std::string& why) {
    error_ = std::string{kind_name(kind_)} + "." + field + ": " + why;
    return false;
  }

private:
  const msgpack::object_array& a_;
  kind kind_;
  std::string& error_;
};

bool decode_hello(fields& f, envelope& out) {
  hello_env e;
  if (!f.count(6) || !f.get(1, "version", e.version) || !f.get(2, "node", e.node)
      || !f.get(3, "pid", e.pid) || !f.get(4, "name", e.name) || !f.get(5, "max_frame", e.max_frame))
    return false;
  out = std::move(e);
  return true;
}

bool decode_spawn(fields& f, envelope& out) {
  spawn_env e;
  if (!f.count(5) || !f.get(1, "request", e.request) || !f.get(2, "actor", e.actor)
      || !f.get(3, "main", e.main) || !f.array(4, "args", e.args))
    return false;
  out = std::move(e);
  return true;
}

// spawned and found: [kind, request, ok, [node, actor] | error]
template <class Env>
bool decode_answer(fields& f, envelope& out) {
  Env e;
  if (!f.count(4) || !f.get(1, "request", e.request) || !f.get(2, "ok", e.ok))
    return false;
  if (e.ok) {
    msgpack::object ref;
    if (!f.array(3, "actor", ref))
      return false;
    codec_state st;
    std::tuple<std::uint64_t, std::uint64_t> pair;
    if (!codec<decltype(pair)>::decode(ref, pair, st))
      return f.fail("actor", st.error);
    e.actor = {std::get<0>(pair), std::get<1>(pair)};
  } else if (!f.error_object(3, "error", e.error)) {
    return false;
  }
  out = std::move(e);
  return true;
}

bool decode_spawned(fields& f, envelope& out) {
  return decode_answer<spawned_env>(f, out);
}

bool decode_found(fields& f, envelope& out) {
  return decode_answer<found_env>(f, out);
}

bool decode_lookup(fields& f, envelope& out) {
  lookup_env e;
  if (!f.count(3) || !f.get(1, "request", e.request) || !f.get(2, "name", e.name))
    return false;
  out = std::move(e);
  return true;
}

bool decode_send(fields& f, envelope& out) {
  send_env e;
  if (!f.count(6) || !f.ref(1, "to", e.to) || !f.ref(3, "from", e.from)
      || !f.array(5, "message", e.message))
    return false;
  out = std::move(e);
  return true;
}

bool decode_request(fields& f, envelope& out) {
  request_env e;
  if (!f.count(7) || !f.ref(1, "to", e.to) || !f.ref(3, "from", e.from)
      || !f.get(5, "request", e.request) || !f.array(6, "message", e.message))
    return false;
  out = std::move(e);
  return true;
}

bool decode_response(fields& f, envelope& out) {
  response_env e;
  if (!f.count(8) || !f.ref(1, "to", e.to) || !f.ref(3, "from", e.from)
      || !f.get(5, "request", e.request) || !f.get(6, "ok", e.ok))
    return false;
  if (e.ok ? !f.array(7, "message", e.message) : !f.error_object(7, "error", e.error))
    return false;
  out = std::move(e);
  return true;
}

bool decode_monitor(fields& f, envelope& out) {
  monitor_env e;
  if (!f.count(3) || !f.ref(1, "actor", e.actor))
    return false;
  out = e;
  return true;
}

bool decode_down(fields& f, envelope& out) {
  down_env e;
  msgpack::object reason;
  if (!f.count(4) || !f.ref(1, "actor", e.actor) || !f.any(3, reason))
    return false;
  if (reason.type != msgpack::type::NIL) {
    e.reason.emplace();
    if (!f.error_object(3, "reason", *e.reason))
      return false;
  }
  out = std::move(e);
  return true;
}

bool decode_heartbeat(fields& f, envelope& out) {
  if (!f.count(1))
    return false;
  out = heartbeat_env{};
  return true;
}

bool decode_shutdown(fields& f, envelope& out) {
  shutdown_env e;
  if (!f.count(2) || !f.get(1, "reason", e.reason))
    return false;
  out = std::move(e);
  return true;
}

bool decode_fds(fields& f, envelope& out) {
  fds_env e;
  if (!f.count(2) || !f.get(1, "count", e.count))
    return false;
  if (e.count == 0 || e.count > max_fds_per_frame)
    return f.fail("count", "must be 1 to " + std::to_string(max_fds_per_frame));
  out = e;
  return true;
}

using decode_fn = bool (*)(fields&, envelope&);

constexpr decode_fn decoders[kind_count] = {
  decode_hello,    decode_spawn,   decode_spawned, decode_send,      decode_request,
  decode_response, decode_monitor, decode_down,    decode_heartbeat, decode_shutdown,
  decode_lookup,   decode_found,   decode_fds,
};

// Strings and binaries stay in the payload instead of being copied into the zone.
bool reference_in_place(msgpack::type::object_type type, std::size_t, void*) {
  return type == msgpack::type::STR || type == msgpack::type::BIN;
}

} // namespace

bool decode_error(const msgpack::object& o, error_view& out, std::string& error) {
  if (o.type != msgpack::type::ARRAY || o.via.array.size != 4) {
    error = std::string{"expected an error [category, code, text, context], got "}
            + object_kind(o);
    return false;
  }
  codec_state st;
  const auto* f = o.via.array.ptr;
  if (!codec<std::string>::decode(f[0], out.category, st)
      || !codec<std::uint32_t>::decode(f[1], out.code, st)
      || !codec<std::string>::decode(f[2], out.text, st)) {
    error = "error object: " + st.error;
    return false;
  }
  if (f[3].type != msgpack::type::NIL && f[3].type != msgpack::type::ARRAY) {
    error = std::string{"error context: expected nil or array, got "} + object_kind(f[3]);
    return false;
  }
  out.context = f[3];
  return true;
}

namespace {

bool decode_root(const msgpack::object& root, envelope& out, std::string& error) {
  if (root.type != msgpack::type::ARRAY || root.via.array.size == 0) {
    error = std::string{"an envelope is a non-empty array, got "} + object_kind(root);
    return false;
  }
  std::uint8_t k = 0;
  codec_state st;
  if (!codec<std::uint8_t>::decode(root.via.array.ptr[0], k, st) || k >= kind_count) {
    error = st.ok() ? "unknown envelope kind " + std::to_string(k) : "envelope kind: " + st.error;
    return false;
  }
  fields f{root, static_cast<kind>(k), error};
  return decoders[k](f, out);
}

// A send or request whose head is in mproc's own shape: only its message is unpacked, at the
// depth it has inside the envelope. Whatever does not fit (a message that is not an array,
// is malformed or is followed by more) is left to the full decoder, so every error reads the
// same as it would without this short cut.
bool decode_message_envelope(std::string_view payload, msgpack::zone& zone, envelope& out) {
  message_head h;
  if (!read_message_head(payload, h))
    return false;
  auto tail = payload.substr(h.message_at);
  msgpack::object message;
  try {
    message = unpack_bounded(zone, tail.data(), tail.size(), 1);
  } catch (const std::exception&) {
    return false;
  }
  if (message.type != msgpack::type::ARRAY)
    return false;
  if (h.k == kind::send)
    out = send_env{h.to, h.from, message};
  else
    out = request_env{h.to, h.from, h.request, message};
  return true;
}

// Both forms hold the same checks in the same order, so their errors read the same.
bool unpacked_whole(std::size_t offset, std::size_t size, std::string& error) {
  if (offset == size)
    return true;
  error = std::to_string(size - offset) + " trailing bytes after the envelope";
  return false;
}

} // namespace

bool decode_envelope(std::string_view payload, decoded_envelope& out, std::string& error) {
  std::size_t offset = 0;
  try {
    out.handle = unpack_bounded(payload.data(), payload.size(), offset, reference_in_place);
  } catch (const std::exception& e) {  // unpack_error, or bad_alloc for a huge honest value
    error = e.what();
    return false;
  }
  return unpacked_whole(offset, payload.size(), error)
         && decode_root(out.handle.get(), out.env, error);
}

bool decode_envelope(std::string_view payload, msgpack::zone& zone, envelope& out,
                     std::string& error) {
  zone.clear();
  if (decode_message_envelope(payload, zone, out))
    return true;
  msgpack::object root;
  std::size_t offset = 0;
  zone.clear();
  try {
    root = unpack_bounded(zone, payload.data(), payload.size(), offset);
  } catch (const std::exception& e) {
    error = e.what();
    return false;
  }
  return unpacked_whole(offset, payload.size(), error) && decode_root(root, out, error);
}

} // namespace mproc::wire
