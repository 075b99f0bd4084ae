// Codecs of the standard containers: vectors, sets, maps, optionals, tuples and pairs, each
// element through its own codec (codec.hpp).
#pragma once

#include <map>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <unordered_map>
#include <utility>
#include <vector>

#include "mproc/serialization/codec_scalars.hpp"

namespace mproc::wire {

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
  nested level{st};
  pk.pack_map(static_cast<std::uint32_t>(m.size()));
  for (const auto& [k, v] : m) {
    codec<typename Map::key_type>::encode(pk, k, st);
    codec<typename Map::mapped_type>::encode(pk, v, st);
  }
}

template <class Seq>
void encode_sequence(packer& pk, const Seq& xs, codec_state& st) {
  nested level{st};
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
  nested level{st};
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

} // namespace mproc::wire
