#include "mproc/runtime/internal/message_codec.hpp"

#include <array>
#include <map>
#include <set>
#include <typeindex>

#include <caf/actor_cast.hpp>
#include <caf/actor_system.hpp>
#include <caf/message_builder.hpp>
#include <caf/type_nr.hpp>

#include "mproc/runtime/blob.hpp"
#include "mproc/runtime/errors.hpp"
#include "mproc/runtime/message_types.hpp"
#include "mproc/serialization/type_registry.hpp"

namespace mproc::wire {

void codec<caf::atom_value>::encode(packer& pk, caf::atom_value x, codec_state&) {
  pk.pack(caf::to_string(x));
}

bool codec<caf::atom_value>::decode(const msgpack::object& o, caf::atom_value& out,
                                    codec_state& st) {
  if (o.type != msgpack::type::STR)
    return type_mismatch(st, name(), o);
  if (o.via.str.size > 10)
    return st.fail("atom '" + std::string{o.via.str.ptr, o.via.str.size}
                   + "' is longer than 10 characters");
  out = caf::atom_from_string(caf::string_view{o.via.str.ptr, o.via.str.size});
  return true;
}

void codec<caf::strong_actor_ptr>::encode(packer& pk, const caf::strong_actor_ptr& x,
                                          codec_state& st) {
  if (!x) {
    pk.pack_nil();
    return;
  }
  if (st.ctx == nullptr) {
    st.fail("an actor reference can only be sent through a node");
    pk.pack_nil();
    return;
  }
  auto ref = st.ctx->export_actor(x);
  pk.pack_array(2);
  pk.pack(ref.node);
  pk.pack(ref.actor);
}

bool codec<caf::strong_actor_ptr>::decode(const msgpack::object& o, caf::strong_actor_ptr& out,
                                          codec_state& st) {
  if (o.type == msgpack::type::NIL) {
    out = nullptr;
    return true;
  }
  std::tuple<std::uint64_t, std::uint64_t> ref;
  if (!codec<decltype(ref)>::decode(o, ref, st))
    return false;
  if (st.ctx == nullptr)
    return st.fail("an actor reference can only be received through a node");
  out = st.ctx->import_actor({std::get<0>(ref), std::get<1>(ref)});
  return true;
}

void codec<caf::actor>::encode(packer& pk, const caf::actor& x, codec_state& st) {
  codec<caf::strong_actor_ptr>::encode(pk, caf::actor_cast<caf::strong_actor_ptr>(x), st);
}

bool codec<caf::actor>::decode(const msgpack::object& o, caf::actor& out, codec_state& st) {
  caf::strong_actor_ptr ptr;
  if (!codec<caf::strong_actor_ptr>::decode(o, ptr, st))
    return false;
  out = caf::actor_cast<caf::actor>(std::move(ptr));
  return true;
}

void codec<caf::error>::encode(packer& pk, const caf::error& x, codec_state& st) {
  if (x)
    mproc::detail::encode_error(pk, x, st);
  else
    pk.pack_nil();
}

bool codec<caf::error>::decode(const msgpack::object& o, caf::error& out, codec_state& st) {
  if (o.type == msgpack::type::NIL) {
    out = caf::error{};
    return true;
  }
  error_view view;
  std::string why;
  if (!decode_error(o, view, why))
    return st.fail(why);
  out = mproc::detail::decode_error(view, st);
  return true;
}

void codec<caf::exit_msg>::encode(packer& pk, const caf::exit_msg& x, codec_state& st) {
  nested level{st};
  pk.pack_array(2);
  codec<caf::strong_actor_ptr>::encode(pk, caf::actor_cast<caf::strong_actor_ptr>(x.source), st);
  codec<caf::error>::encode(pk, x.reason, st);
}

bool codec<caf::exit_msg>::decode(const msgpack::object& o, caf::exit_msg& out, codec_state& st) {
  if (o.type != msgpack::type::ARRAY || o.via.array.size != 2)
    return type_mismatch(st, "exit [source, reason]", o);
  caf::strong_actor_ptr source;
  if (!codec<caf::strong_actor_ptr>::decode(o.via.array.ptr[0], source, st)
      || !codec<caf::error>::decode(o.via.array.ptr[1], out.reason, st))
    return false;
  out.source = caf::actor_cast<caf::actor_addr>(source);
  return true;
}

} // namespace mproc::wire

namespace mproc::detail {

namespace {

// CAF gives its built-in types a number instead of a std::type_info (CAF-NOTES, "Messages
// and a generic codec"); this table maps those numbers to registry entries.
std::array<const wire::type_entry*, caf::type_nrs> entry_by_type_nr{};

template <class T>
void add_builtin() {
  auto& reg = wire::types();
  reg.add(wire::make_type_entry<T, message_sink>());
  if constexpr (caf::type_nr<T>::value != 0)
    entry_by_type_nr[caf::type_nr<T>::value] = reg.find(std::type_index{typeid(T)});
}

template <class... Ts>
void add_builtins() {
  (add_builtin<Ts>(), ...);
}

const wire::type_entry* entry_for(caf::rtti_pair type) {
  if (type.first != 0)
    return entry_by_type_nr[type.first];
  return type.second ? wire::types().find(std::type_index{*type.second}) : nullptr;
}

bool encodable(const caf::message& msg) {
  if (msg.empty())
    return false;
  for (std::size_t i = 0; i < msg.size(); ++i)
    if (entry_for(msg.type(i)) == nullptr)
      return false;
  return true;
}

} // namespace

void register_builtin_types() {
  if (wire::types().frozen())
    return;
  using str = std::string;
  add_builtins<bool, std::int8_t, std::int16_t, std::int32_t, std::int64_t, std::uint8_t,
               std::uint16_t, std::uint32_t, std::uint64_t, float, double, str, bytes, blob, value,
               caf::atom_value, caf::actor, caf::strong_actor_ptr, caf::error, caf::exit_msg>();
  add_builtins<std::vector<bool>, std::vector<std::int8_t>, std::vector<std::int16_t>,
               std::vector<std::int32_t>, std::vector<std::int64_t>, std::vector<std::uint8_t>,
               std::vector<std::uint16_t>, std::vector<std::uint32_t>,
               std::vector<std::uint64_t>, std::vector<float>, std::vector<double>,
               std::vector<str>, std::vector<bytes>, std::vector<caf::actor>, std::set<str>>();
  add_builtins<std::map<str, str>, std::map<str, bool>, std::map<str, std::int32_t>,
               std::map<str, std::int64_t>, std::map<str, double>>();
}

std::string tag_of(const std::type_info& type) {
  if (const auto* e = wire::types().find(std::type_index{type}))
    return e->name;
  return wire::demangle(type.name());
}

std::string tag_of(const caf::message& msg, std::size_t i) {
  auto type = msg.type(i);
  if (const auto* e = entry_for(type))
    return e->name;
  if (type.second)
    return wire::demangle(type.second->name());
  return caf::numbered_type_names[type.first - 1];
}

bool encode_message(wire::packer& pk, const caf::message& msg, wire::codec_state& st) {
  wire::nested level{st};
  pk.pack_array(static_cast<std::uint32_t>(2 * msg.size()));
  for (std::size_t i = 0; i < msg.size(); ++i) {
    const auto* entry = entry_for(msg.type(i));
    if (entry == nullptr)
      return st.fail("element " + std::to_string(i) + " of the message has type "
                     + tag_of(msg, i)
                     + ", which cannot cross processes: register it with MPROC_MESSAGE");
    pk.pack(entry->name);
    entry->encode(pk, msg.get(i), st);
    if (!st.ok())
      return false;
  }
  return true;
}

namespace {

bool pairs_array(const msgpack::object& o, wire::codec_state& st) {
  if (o.type == msgpack::type::ARRAY && o.via.array.size % 2 == 0)
    return true;
  st.fail(std::string{"a message is an array of tag, value pairs, got "} + wire::object_kind(o)
          + (o.type == msgpack::type::ARRAY ? " of odd length" : ""));
  return false;
}

decode_status decode_into(const msgpack::object& o, message_sink& sink, wire::codec_state& st) {
  const auto* items = o.via.array.ptr;
  for (std::uint32_t i = 0; i < o.via.array.size; i += 2) {
    if (items[i].type != msgpack::type::STR) {
      st.fail("element " + std::to_string(i / 2) + ": the type tag must be a string, got "
              + wire::object_kind(items[i]));
      return decode_status::bad_value;
    }
    std::string_view tag{items[i].via.str.ptr, items[i].via.str.size};
    const auto* entry = wire::types().find(tag);
    if (entry == nullptr) {
      st.fail("element " + std::to_string(i / 2) + " has type tag '" + std::string{tag}
              + "', which this process does not know: register it with MPROC_MESSAGE");
      return decode_status::unknown_type;
    }
    if (!entry->decode(items[i + 1], st, &sink)) {
      st.error = "element " + std::to_string(i / 2) + " (" + entry->name + "): " + st.error;
      return decode_status::bad_value;
    }
  }
  return decode_status::ok;
}

} // namespace

decode_status decode_message(const msgpack::object& o, caf::message& out, wire::codec_state& st) {
  if (!pairs_array(o, st))
    return decode_status::bad_value;
  message_sink sink{o.via.array.size == 2};
  auto status = decode_into(o, sink, st);
  if (status == decode_status::ok)
    out = sink.take();
  return status;
}

decode_status decode_element(const msgpack::object& o, caf::mailbox_element_ptr& out,
                             wire::codec_state& st) {
  if (!pairs_array(o, st))
    return decode_status::bad_value;
  message_sink sink{o.via.array.size == 2, true};
  auto status = decode_into(o, sink, st);
  if (status == decode_status::ok)
    out = sink.take_element();
  return status;
}

void encode_error(wire::packer& pk, const caf::error& e, wire::codec_state& st) {
  auto text = st.ctx ? st.ctx->system().render(e) : std::string{};
  wire::nested level{st};
  pk.pack_array(4);
  pk.pack(caf::to_string(e.category()));
  pk.pack(static_cast<std::uint32_t>(e.code()));
  pk.pack(text);
  // A context that cannot cross (an unregistered type) becomes nil: the text above still
  // tells a human what happened. Checked up front so nothing half-packed reaches the frame.
  if (encodable(e.context()))
    encode_message(pk, e.context(), st);
  else
    pk.pack_nil();
}

caf::error decode_error(const wire::error_view& e, wire::codec_state& st) {
  // CAF 0.17 keeps a code in 8 bits: 256 would read as 0, which is no error at all (a
  // failed answer as none, a down reason as a normal end). Such a code is a peer's mistake.
  // (0 itself is CAF's empty error, which a handler may answer with: it stays one.)
  if (e.code == 0)
    return caf::error{};
  if (e.code > 255)
    return make_error(errc::protocol_error, "an error of code " + std::to_string(e.code)
                                              + " (category '" + e.category + "'), which "
                                              + "the protocol does not allow: " + e.text);
  caf::message context;
  if (e.context.type == msgpack::type::ARRAY) {
    wire::codec_state ctx_st{st.ctx, {}};
    ctx_st.descriptors = st.descriptors;  // a blob in the context came beside the frame
    if (decode_message(e.context, context, ctx_st) != decode_status::ok)
      context = caf::make_message(e.text);
  }
  auto category = caf::atom_from_string(caf::string_view{e.category.data(),
                                                          std::min<std::size_t>(e.category.size(), 10)});
  return caf::error{static_cast<std::uint8_t>(e.code), category, std::move(context)};
}

} // namespace mproc::detail
