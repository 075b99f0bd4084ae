// Value codec: how one C++ value becomes a msgpack value and back, and what its wire tag is.
//
// Every sendable type T has a `codec<T>` with
//   static std::string name();                                  // wire tag: "i32", "vec<str>", "job"
//   static void encode(packer&, const T&, codec_state&);
//   static bool decode(const msgpack::object&, T&, codec_state&); // false + state.error on failure
// Decoding never throws and never trusts the input: wrong types, out-of-range integers and
// wrong shapes become an error text naming the path to the bad value.
//
// Built-ins live here. User structs become sendable through MSGPACK_DEFINE plus a name
// (see runtime/message_types.hpp). Actor references are a runtime concern: the runtime
// specialises codec<caf::actor> using the opaque `context` below.
#pragma once

#include <bit>
#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

#include <msgpack.hpp>

#include "mproc/serialization/bytes.hpp"
#include "mproc/serialization/unpack.hpp"

namespace mproc::wire {

using buffer = msgpack::sbuffer;
using packer = msgpack::packer<msgpack::sbuffer>;

// Defined by the runtime: resolves actor references while a message is encoded or decoded.
class context;

// A large payload that a frame sends from where it lies instead of copying it into its
// buffer: it goes out after the buffer's first `at` bytes.
struct borrowed_span {
  std::size_t at;
  const char* data;
  std::size_t size;
};

// Below this a copy into the buffer is cheaper than an extra piece in the write.
inline constexpr std::size_t borrow_min = std::size_t{64} << 10;

// Carries the context and the first failure of one encode or decode pass.
struct codec_state {
  context* ctx = nullptr;
  std::string error;
  // Set by a frame that can send payloads from where they lie (see borrow).
  std::vector<borrowed_span>* borrowed = nullptr;
  const buffer* buf = nullptr;
  // File descriptors that travel with the frame (SCM_RIGHTS, local links only; null
  // elsewhere). Encoding appends descriptors the frame then owns; decoding finds the
  // frame's descriptors here and takes one by setting it to -1.
  std::vector<int>* descriptors = nullptr;
  // Encoding: steps to finish once the frame is handed to its link (true) or dropped (false),
  // e.g. a pipe end closes here only once the frame carrying it goes out.
  std::vector<std::function<void(bool sent)>>* settle = nullptr;

  // Encoding: records `size` bytes at `data` to go out at the buffer's current end rather
  // than be copied into it, when a frame allows it and the payload is large. The caller
  // packs the header either way and the body only when this is false; the frame keeps
  // what `data` points into alive until it is written.
  bool borrow(const char* data, std::size_t size) {
    if (borrowed == nullptr || size < borrow_min)
      return false;
    borrowed->push_back({buf->size(), data, size});
    return true;
  }

  bool fail(std::string why) {
    if (error.empty())
      error = std::move(why);
    return false;
  }
  bool ok() const { return error.empty(); }
};

// Name of a msgpack object's type, for error messages.
const char* object_kind(const msgpack::object& o);
bool type_mismatch(codec_state& st, const std::string& expected, const msgpack::object& got);

// Specialised (by MPROC_MESSAGE) to give a user struct its wire name.
template <class T>
struct user_type_name;

template <class T, class Enable = void>
struct codec;

// The value decoding fills: T{}, unless codec<T> offers blank() (a handle whose default
// constructor would create what it refers to, e.g. a lock); tuples and pairs of them too.
template <class T>
struct blank_maker {
  static T make() {
    if constexpr (requires { codec<T>::blank(); })
      return codec<T>::blank();
    else
      return T{};
  }
};
template <class... Ts>
struct blank_maker<std::tuple<Ts...>> {
  static std::tuple<Ts...> make() { return {blank_maker<Ts>::make()...}; }
};
template <class A, class B>
struct blank_maker<std::pair<A, B>> {
  static std::pair<A, B> make() { return {blank_maker<A>::make(), blank_maker<B>::make()}; }
};
template <class T>
T blank_value() {
  return blank_maker<T>::make();
}

// ---- scalars ---------------------------------------------------------------------------

template <>
struct codec<bool> {
  static std::string name() { return "bool"; }
  static void encode(packer& pk, bool x, codec_state&) { pk.pack(x); }
  static bool decode(const msgpack::object& o, bool& out, codec_state& st) {
    if (o.type != msgpack::type::BOOLEAN)
      return type_mismatch(st, name(), o);
    out = o.via.boolean;
    return true;
  }
};

template <class T>
inline constexpr bool is_wire_integer_v = std::is_integral_v<T> && !std::is_same_v<T, bool>;

template <class T>
struct codec<T, std::enable_if_t<is_wire_integer_v<T>>> {
  static std::string name() {
    // Built in two steps: "i" + std::to_string(...) trips GCC 12's -Wrestrict at -O2.
    std::string out{std::is_signed_v<T> ? "i" : "u"};
    out += std::to_string(8 * sizeof(T));
    return out;
  }
  static void encode(packer& pk, T x, codec_state&) { pk.pack(x); }
  static bool decode(const msgpack::object& o, T& out, codec_state& st) {
    using lim = std::numeric_limits<T>;
    if (o.type == msgpack::type::POSITIVE_INTEGER) {
      if (o.via.u64 > static_cast<std::uint64_t>(lim::max()))
        return st.fail(std::to_string(o.via.u64) + " does not fit in " + name());
      out = static_cast<T>(o.via.u64);
      return true;
    }
    if (o.type == msgpack::type::NEGATIVE_INTEGER) {
      if (!std::is_signed_v<T> || o.via.i64 < static_cast<std::int64_t>(lim::min()))
        return st.fail(std::to_string(o.via.i64) + " does not fit in " + name());
      out = static_cast<T>(o.via.i64);
      return true;
    }
    return type_mismatch(st, name(), o);
  }
};

template <class T>
struct codec<T, std::enable_if_t<std::is_floating_point_v<T>>> {
  static_assert(sizeof(T) == 4 || sizeof(T) == 8, "only float and double cross the wire");
  static std::string name() { return sizeof(T) == 4 ? "f32" : "f64"; }
  // Always a msgpack float32/float64. msgpack-c 4.1.3's pack_float/pack_double turn a
  // whole-number float into an integer, which loses -0.0 and converts 2^64 to uint64_t
  // (undefined behaviour: their range check rounds UINT64_MAX up to 2^64). No macro turns
  // that off, so the header byte and the big-endian bits are written here; pack_bin_body
  // appends raw bytes and nothing else.
  static void encode(packer& pk, T x, codec_state&) {
    using bits_t = std::conditional_t<sizeof(T) == 4, std::uint32_t, std::uint64_t>;
    auto bits = std::bit_cast<bits_t>(x);
    char raw[1 + sizeof(T)];
    raw[0] = static_cast<char>(sizeof(T) == 4 ? 0xca : 0xcb);
    for (std::size_t i = 0; i < sizeof(T); ++i)
      raw[1 + i] = static_cast<char>(bits >> (8 * (sizeof(T) - 1 - i)));
    pk.pack_bin_body(raw, sizeof raw);
  }
  // Integers are accepted too: clients in other languages often send 1 for 1.0.
  static bool decode(const msgpack::object& o, T& out, codec_state& st) {
    switch (o.type) {
      case msgpack::type::FLOAT32:
      case msgpack::type::FLOAT64: out = static_cast<T>(o.via.f64); return true;
      case msgpack::type::POSITIVE_INTEGER: out = static_cast<T>(o.via.u64); return true;
      case msgpack::type::NEGATIVE_INTEGER: out = static_cast<T>(o.via.i64); return true;
      default: return type_mismatch(st, name(), o);
    }
  }
};

// A str (bin = false) or bin value: its header, then its body unless the frame borrows it.
// msgpack counts their bytes in 32 bits: a larger value fails rather than being cut.
inline void pack_raw(packer& pk, codec_state& st, const char* data, std::size_t size, bool bin) {
  if (size > std::numeric_limits<std::uint32_t>::max()) {
    st.fail(std::string{bin ? "bytes" : "a string"} + " of " + std::to_string(size)
            + " bytes: msgpack's limit is 4 GiB");
    pk.pack_nil();
    return;
  }
  auto n = static_cast<std::uint32_t>(size);
  bin ? pk.pack_bin(n) : pk.pack_str(n);
  if (!st.borrow(data, size))
    bin ? pk.pack_bin_body(data, n) : pk.pack_str_body(data, n);
}

template <>
struct codec<std::string> {
  static std::string name() { return "str"; }
  static void encode(packer& pk, const std::string& x, codec_state& st) {
    pack_raw(pk, st, x.data(), x.size(), false);
  }
  static bool decode(const msgpack::object& o, std::string& out, codec_state& st) {
    if (o.type != msgpack::type::STR)
      return type_mismatch(st, name(), o);
    out.assign(o.via.str.ptr, o.via.str.size);
    return true;
  }
};

using mproc::bytes;

template <>
struct codec<bytes> {
  static std::string name() { return "bytes"; }
  static void encode(packer& pk, const bytes& x, codec_state& st) {
    pack_raw(pk, st, x.data(), x.size(), true);
  }
  static bool decode(const msgpack::object& o, bytes& out, codec_state& st) {
    if (o.type != msgpack::type::BIN)
      return type_mismatch(st, name(), o);
    assign_large(out, o.via.bin.ptr, o.via.bin.size);
    return true;
  }
};

// ---- containers ------------------------------------------------------------------------

namespace detail {

// A type's wire name, made only when an error needs it: decoding is a hot path, and a name
// like "vec<pair<i32,str>>" costs allocations.
using name_fn = std::string (*)();

bool expect_array(const msgpack::object& o, name_fn what, codec_state& st);
bool expect_map(const msgpack::object& o, name_fn what, codec_state& st);
bool at_index(codec_state& st, name_fn what, std::size_t i);

template <class Seq>
bool decode_sequence(const msgpack::object& o, Seq& out, name_fn what, codec_state& st) {
  using elem = typename Seq::value_type;
  if (!expect_array(o, what, st))
    return false;
  out.clear();
  for (std::uint32_t i = 0; i < o.via.array.size; ++i) {
    elem x = blank_value<elem>();
    if (!codec<elem>::decode(o.via.array.ptr[i], x, st))
      return at_index(st, what, i);
    out.insert(out.end(), std::move(x));
  }
  return true;
}

template <class Map>
bool decode_map(const msgpack::object& o, Map& out, name_fn what, codec_state& st) {
  using key = typename Map::key_type;
  using value = typename Map::mapped_type;
  if (!expect_map(o, what, st))
    return false;
  out.clear();
  for (std::uint32_t i = 0; i < o.via.map.size; ++i) {
    key k = blank_value<key>();
    value v = blank_value<value>();
    const auto& kv = o.via.map.ptr[i];
    if (!codec<key>::decode(kv.key, k, st) || !codec<value>::decode(kv.val, v, st))
      return at_index(st, what, i);
    out.emplace(std::move(k), std::move(v));
  }
  return true;
}

template <class Map>
void encode_map(packer& pk, const Map& m, codec_state& st) {
  pk.pack_map(static_cast<std::uint32_t>(m.size()));
  for (const auto& [k, v] : m) {
    codec<typename Map::key_type>::encode(pk, k, st);
    codec<typename Map::mapped_type>::encode(pk, v, st);
  }
}

template <class Seq>
void encode_sequence(packer& pk, const Seq& xs, codec_state& st) {
  pk.pack_array(static_cast<std::uint32_t>(xs.size()));
  for (const auto& x : xs)
    codec<typename Seq::value_type>::encode(pk, x, st);
}

} // namespace detail

template <class T>
struct codec<std::vector<T>, std::enable_if_t<!std::is_same_v<T, char>>> {
  static std::string name() { return "vec<" + codec<T>::name() + ">"; }
  static void encode(packer& pk, const std::vector<T>& xs, codec_state& st) {
    detail::encode_sequence(pk, xs, st);
  }
  static bool decode(const msgpack::object& o, std::vector<T>& out, codec_state& st) {
    return detail::decode_sequence(o, out, &name, st);
  }
};

template <class T>
struct codec<std::set<T>> {
  static std::string name() { return "set<" + codec<T>::name() + ">"; }
  static void encode(packer& pk, const std::set<T>& xs, codec_state& st) {
    detail::encode_sequence(pk, xs, st);
  }
  static bool decode(const msgpack::object& o, std::set<T>& out, codec_state& st) {
    return detail::decode_sequence(o, out, &name, st);
  }
};

template <class K, class V>
struct codec<std::map<K, V>> {
  static std::string name() { return "map<" + codec<K>::name() + "," + codec<V>::name() + ">"; }
  static void encode(packer& pk, const std::map<K, V>& m, codec_state& st) {
    detail::encode_map(pk, m, st);
  }
  static bool decode(const msgpack::object& o, std::map<K, V>& out, codec_state& st) {
    return detail::decode_map(o, out, &name, st);
  }
};

// Same wire shape as std::map; a distinct tag so the receiver rebuilds the same C++ type.
template <class K, class V>
struct codec<std::unordered_map<K, V>> {
  static std::string name() { return "hmap<" + codec<K>::name() + "," + codec<V>::name() + ">"; }
  static void encode(packer& pk, const std::unordered_map<K, V>& m, codec_state& st) {
    detail::encode_map(pk, m, st);
  }
  static bool decode(const msgpack::object& o, std::unordered_map<K, V>& out, codec_state& st) {
    return detail::decode_map(o, out, &name, st);
  }
};

template <class T>
struct codec<std::optional<T>> {
  static std::string name() { return "opt<" + codec<T>::name() + ">"; }
  static void encode(packer& pk, const std::optional<T>& x, codec_state& st) {
    if (x)
      codec<T>::encode(pk, *x, st);
    else
      pk.pack_nil();
  }
  static bool decode(const msgpack::object& o, std::optional<T>& out, codec_state& st) {
    if (o.type == msgpack::type::NIL) {
      out.reset();
      return true;
    }
    T x = blank_value<T>();
    if (!codec<T>::decode(o, x, st))
      return false;
    out = std::move(x);
    return true;
  }
};

namespace detail {

template <class... Ts>
std::string join_names() {
  std::string out;
  ((out += (out.empty() ? "" : ",") + codec<Ts>::name()), ...);
  return out;
}

template <class Tuple, std::size_t... Is>
void encode_fields(packer& pk, const Tuple& t, codec_state& st, std::index_sequence<Is...>) {
  pk.pack_array(sizeof...(Is));
  (codec<std::tuple_element_t<Is, Tuple>>::encode(pk, std::get<Is>(t), st), ...);
}

template <class Tuple, std::size_t... Is>
bool decode_fields(const msgpack::object& o, Tuple& t, name_fn what, codec_state& st,
                   std::index_sequence<Is...>) {
  if (!expect_array(o, what, st))
    return false;
  if (o.via.array.size != sizeof...(Is))
    return st.fail(what() + " needs " + std::to_string(sizeof...(Is)) + " fields, got "
                   + std::to_string(o.via.array.size));
  bool ok = true;
  ((ok = ok
         && (codec<std::tuple_element_t<Is, Tuple>>::decode(o.via.array.ptr[Is], std::get<Is>(t),
                                                            st)
             || at_index(st, what, Is))),
   ...);
  return ok;
}

} // namespace detail

template <class... Ts>
struct codec<std::tuple<Ts...>> {
  static std::string name() { return "tup<" + detail::join_names<Ts...>() + ">"; }
  static void encode(packer& pk, const std::tuple<Ts...>& t, codec_state& st) {
    detail::encode_fields(pk, t, st, std::index_sequence_for<Ts...>{});
  }
  static bool decode(const msgpack::object& o, std::tuple<Ts...>& t, codec_state& st) {
    return detail::decode_fields(o, t, &name, st, std::index_sequence_for<Ts...>{});
  }
};

template <class A, class B>
struct codec<std::pair<A, B>> {
  static std::string name() { return "pair<" + detail::join_names<A, B>() + ">"; }
  static void encode(packer& pk, const std::pair<A, B>& p, codec_state& st) {
    detail::encode_fields(pk, p, st, std::index_sequence<0, 1>{});
  }
  static bool decode(const msgpack::object& o, std::pair<A, B>& p, codec_state& st) {
    return detail::decode_fields(o, p, &name, st, std::index_sequence<0, 1>{});
  }
};

// ---- user structs (MSGPACK_DEFINE + a name) --------------------------------------------

template <class T, class = void>
inline constexpr bool has_msgpack_define_v = false;
template <class T>
inline constexpr bool has_msgpack_define_v<T, std::void_t<decltype(&T::msgpack_unpack)>> = true;

namespace detail {
// MSGPACK_DEFINE packs a struct as an array of its fields; this is that count.
template <class T>
std::uint32_t field_count() {
  static const std::uint32_t n = [] {
    buffer buf;
    msgpack::pack(buf, T{});
    auto handle = unpack_bounded(buf.data(), buf.size());
    return handle.get().via.array.size;
  }();
  return n;
}

template <class F>
concept has_codec = requires { codec<F>::name(); };

// The "packer" MSGPACK_DEFINE's msgpack_pack is handed: fields that have a codec are packed
// by it, so a float field inside a struct is a msgpack float too (see codec<double>), others
// by msgpack-c's adaptor as before. The wire shape is msgpack-c's either way.
class field_packer {
public:
  field_packer(packer& pk, codec_state& st) : pk_(pk), st_(st) {}
  void pack_array(std::uint32_t n) { pk_.pack_array(n); }
  template <class F>
  void pack(const F& x) {
    if constexpr (has_codec<F>)
      codec<F>::encode(pk_, x, st_);
    else
      pk_.pack(x);
  }

private:
  packer& pk_;
  codec_state& st_;
};

} // namespace detail

template <class T>
struct codec<T, std::enable_if_t<has_msgpack_define_v<T>>> {
  static std::string name() { return user_type_name<T>::value; }
  static void encode(packer& pk, const T& x, codec_state& st) {
    detail::field_packer fields{pk, st};
    x.msgpack_pack(fields);
  }
  // msgpack-c would silently accept missing trailing fields; a wrong shape is an error here.
  static bool decode(const msgpack::object& o, T& out, codec_state& st) {
    if (!detail::expect_array(o, &name, st))
      return false;
    if (o.via.array.size != detail::field_count<T>())
      return st.fail(name() + " needs " + std::to_string(detail::field_count<T>())
                     + " fields, got " + std::to_string(o.via.array.size));
    try {
      o.convert(out);
      return true;
    } catch (const std::exception& e) {
      return st.fail(name() + ": a field has the wrong type (" + e.what() + ")");
    }
  }
};

// ---- whole-value helpers ---------------------------------------------------------------

template <class T>
void encode_value(packer& pk, const T& x, codec_state& st) {
  codec<T>::encode(pk, x, st);
}

template <class T>
bool decode_value(const msgpack::object& o, T& out, codec_state& st) {
  return codec<T>::decode(o, out, st);
}

} // namespace mproc::wire
