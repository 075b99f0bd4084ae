// libFuzzer harness for the envelope decoder (serialization/envelope.hpp).
//
// Input: one frame payload. decode_envelope (both forms) must return true or an error, never crash; the
// error objects it accepts pack and decode again; and an envelope whose fields it accepted packs again into
// a frame that decodes to the same fields.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <variant>

#include "mproc/serialization/envelope.hpp"
#include "mproc/serialization/frame.hpp"
#include "mproc/serialization/unpack.hpp"
#include "same_object.hpp"

using namespace mproc::wire;

namespace {

// Packs `env` again when mproc has a packer for the whole of it; false otherwise.
bool repack(const envelope& env, buffer& buf) {
  if (const auto* e = std::get_if<hello_env>(&env)) {
    if (e->version != protocol_version)
      return false;
    pack_hello(buf, e->node, e->pid, e->name, e->max_frame);
  } else if (const auto* e = std::get_if<monitor_env>(&env)) {
    pack_monitor(buf, e->actor);
  } else if (const auto* e = std::get_if<lookup_env>(&env)) {
    pack_lookup(buf, e->request, e->name);
  } else if (const auto* e = std::get_if<shutdown_env>(&env)) {
    pack_shutdown(buf, e->reason);
  } else if (std::holds_alternative<heartbeat_env>(env)) {
    pack_heartbeat(buf);
  } else {
    return false;
  }
  return true;
}

bool same_ref(actor_ref a, actor_ref b) {
  return a.node == b.node && a.actor == b.actor;
}

bool same(const envelope& a, const envelope& b) {
  if (a.index() != b.index())
    return false;
  if (const auto* x = std::get_if<hello_env>(&a)) {
    const auto& y = std::get<hello_env>(b);
    return x->version == y.version && x->node == y.node && x->pid == y.pid && x->name == y.name
           && x->max_frame == y.max_frame;
  }
  if (const auto* x = std::get_if<monitor_env>(&a))
    return same_ref(x->actor, std::get<monitor_env>(b).actor);
  if (const auto* x = std::get_if<lookup_env>(&a))
    return x->request == std::get<lookup_env>(b).request && x->name == std::get<lookup_env>(b).name;
  if (const auto* x = std::get_if<shutdown_env>(&a))
    return x->reason == std::get<shutdown_env>(b).reason;
  if (const auto* x = std::get_if<send_env>(&a)) {
    const auto& y = std::get<send_env>(b);
    return same_ref(x->to, y.to) && same_ref(x->from, y.from)
           && mproc::testing::same_object(x->message, y.message);
  }
  if (const auto* x = std::get_if<request_env>(&a)) {
    const auto& y = std::get<request_env>(b);
    return same_ref(x->to, y.to) && same_ref(x->from, y.from) && x->request == y.request
           && mproc::testing::same_object(x->message, y.message);
  }
  return true;  // the rest: their kind alone
}

// An accepted error object packs again (with a nil context) into one that decodes the same.
void check_error(const error_view& e) {
  buffer buf;
  pack_error_head(buf, e.category, e.code, e.text);
  packer{buf}.pack_nil();
  auto handle = unpack_bounded(buf.data(), buf.size());
  error_view back;
  std::string why;
  if (!decode_error(handle.get(), back, why) || back.category != e.category
      || back.code != e.code || back.text != e.text)
    std::abort();
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view payload{reinterpret_cast<const char*>(data), size};
  decoded_envelope d;
  std::string error;
  // The peers' way: one zone reused frame after frame, send and request heads read from the
  // bytes. It must agree with the owning way, errors word for word.
  static msgpack::zone zone;
  envelope in_zone;
  std::string zone_error;
  bool zone_ok = decode_envelope(payload, zone, in_zone, zone_error);
  if (!decode_envelope(payload, d, error)) {
    if (error.empty() || zone_ok || zone_error != error)
      std::abort();
    return 0;
  }
  if (!zone_ok || !same(d.env, in_zone))
    std::abort();
  std::visit(
    [](const auto& e) {
      using E = std::decay_t<decltype(e)>;
      if constexpr (requires { e.error; })
        if (!e.ok)
          check_error(e.error);
      if constexpr (std::is_same_v<E, down_env>)
        if (e.reason)
          check_error(*e.reason);
    },
    d.env);
  buffer buf;
  auto start = begin_frame(buf);
  if (!repack(d.env, buf))
    return 0;
  end_frame(buf, start);
  decoded_envelope again;
  std::string_view frame{buf.data() + frame_header_size, buf.size() - frame_header_size};
  if (!decode_envelope(frame, again, error) || !same(d.env, again.env))
    std::abort();
  return 0;
}
