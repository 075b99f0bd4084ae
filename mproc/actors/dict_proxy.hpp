// A dict held by a Manager (Python's DictProxy): every call is one request to the manager,
// so every process holding a copy of the proxy sees the same dict.
//
//   auto d = manager.dict<std::string, std::int64_t>();
//   d.set("a", 1);                  // d['a'] = 1
//   d.at("a");                      // d['a']; throws mproc::error no_such_key (KeyError)
//   d.get("b");                     // d.get('b'): std::nullopt
//   std::cout << d;                 // {'a': 1}
//
// Keys are compared by their msgpack encoding: 1 and 1.0 are two keys (one in Python).
// Insertion order is kept. Each call throws mproc::error timeout after the proxy's timeout
// (the manager's, unless set_timeout changed it), and fails at once once the manager is gone.
#pragma once

#include <optional>
#include <ostream>
#include <utility>
#include <vector>

#include "mproc/actors/manager_ref.hpp"
#include "mproc/runtime/message_types.hpp"

namespace mproc {

class manager;

template <class K, class V>
class dict_proxy {
public:
  // An invalid proxy (for containers and decoding); every call on it throws.
  dict_proxy() { (void)registered_; }

  V at(const K& key) const { return unpack<V>(ref_.call_one(caf::atom("getitem"), pack(key))); }
  std::optional<V> get(const K& key) const {
    auto reply = ref_.call(caf::atom("get"), pack(key));
    if (reply.empty())
      return std::nullopt;
    return unpack<V>(reply.front());
  }
  V get(const K& key, const V& fallback) const { return get(key).value_or(fallback); }
  void set(const K& key, const V& val) const { ref_.call(caf::atom("set"), pack(key, val)); }
  // del d[key], without Python's KeyError: false when the key was not there.
  bool erase(const K& key) const {
    return unpack<bool>(ref_.call_one(caf::atom("del"), pack(key)));
  }
  bool contains(const K& key) const {
    return unpack<bool>(ref_.call_one(caf::atom("has"), pack(key)));
  }
  std::size_t size() const {
    return unpack<std::uint64_t>(ref_.call_one(caf::atom("len"), {}));
  }
  // Snapshots, in insertion order.
  std::vector<K> keys() const { return detail::unpack_values<K>(ref_.call(caf::atom("keys"), {})); }
  std::vector<V> values() const {
    return detail::unpack_values<V>(ref_.call(caf::atom("values"), {}));
  }
  std::vector<std::pair<K, V>> items() const {
    return detail::unpack_pairs<K, V>(ref_.call(caf::atom("items"), {}));
  }
  // Any range of pairs (a std::map, a vector of pairs), in one request.
  template <class Pairs>
  void update(const Pairs& pairs) const {
    detail::manager_args args;
    for (auto& [k, v] : pairs) {
      args.push_back(detail::pack_value<K>(k));
      args.push_back(detail::pack_value<V>(v));
    }
    ref_.call(caf::atom("update"), std::move(args));
  }
  // Throws no_such_key when missing, as Python's pop(key).
  V pop(const K& key) const { return unpack<V>(ref_.call_one(caf::atom("pop"), pack(key))); }
  V pop(const K& key, const V& fallback) const {
    return unpack<V>(ref_.call_one(caf::atom("pop"), pack(key, fallback)));
  }
  // The pair inserted last. Throws no_such_key when the dict is empty.
  std::pair<K, V> popitem() const {
    auto pairs = detail::unpack_pairs<K, V>(ref_.call(caf::atom("popitem"), {}));
    return std::move(pairs.at(0));
  }
  V setdefault(const K& key, const V& fallback) const {
    return unpack<V>(ref_.call_one(caf::atom("setdefault"), pack(key, fallback)));
  }
  void clear() const { ref_.call(caf::atom("clear"), {}); }
  // What Python's print(d) shows: {1: '1', '2': 2}.
  std::string repr() const { return detail::reply_as_map(ref_.call(caf::atom("items"), {})).repr(); }

  void set_timeout(std::chrono::milliseconds t) { ref_.timeout(t); }
  const detail::manager_ref& ref() const { return ref_; }

private:
  friend class manager;
  friend struct detail::proxy_codec<dict_proxy>;
  explicit dict_proxy(detail::manager_ref ref) : ref_{std::move(ref)} { (void)registered_; }

  static detail::manager_args pack(const K& key) { return {detail::pack_value<K>(key)}; }
  static detail::manager_args pack(const K& key, const V& val) {
    return {detail::pack_value<K>(key), detail::pack_value<V>(val)};
  }
  template <class T>
  static T unpack(const bytes& b) {
    return detail::unpack_value<T>(b);
  }

  detail::manager_ref ref_;
  inline static const bool registered_ = detail::register_message_type<dict_proxy>();
};

template <class K, class V>
std::ostream& operator<<(std::ostream& os, const dict_proxy<K, V>& d) {
  return os << d.repr();
}

} // namespace mproc

template <class K, class V>
struct mproc::wire::codec<mproc::dict_proxy<K, V>>
    : mproc::detail::proxy_codec<mproc::dict_proxy<K, V>> {
  static std::string name() { return "dict_proxy<" + codec<K>::name() + "," + codec<V>::name() + ">"; }
};

template <class K, class V>
struct caf::allowed_unsafe_message_type<mproc::dict_proxy<K, V>> : std::true_type {};
