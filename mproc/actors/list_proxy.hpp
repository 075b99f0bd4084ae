// A list held by a Manager (Python's ListProxy): every call is one request to the manager.
//
//   auto l = manager.list<int>();
//   l.extend(std::vector{3, 1, 2});     // l.extend([3, 1, 2])
//   l.at(-1);                           // l[-1]: 2; throws out_of_range (IndexError)
//   l.sort();                           // in the manager, as Python orders the values
//   l.slice(0, 2);                      // l[0:2]: {1, 2}
//   std::cout << l;                     // [1, 2, 3]
//
// Indexes count from the end when negative, as Python's. Items are compared by their msgpack
// encoding (index, count, remove, contains); sort compares them as Python would.
#pragma once

#include <optional>
#include <ostream>
#include <vector>

#include "mproc/actors/manager_ref.hpp"
#include "mproc/runtime/message_types.hpp"

namespace mproc {

class manager;

template <class T>
class list_proxy {
public:
  using index_t = std::int64_t;

  // An invalid proxy (for containers and decoding); every call on it throws.
  list_proxy() { (void)registered_; }

  void append(const T& x) const { ref_.call(caf::atom("append"), pack(x)); }
  // Any range of T, in one request.
  template <class Range>
  void extend(const Range& xs) const {
    detail::manager_args args;
    for (auto& x : xs)
      args.push_back(detail::pack_value<T>(x));
    ref_.call(caf::atom("extend"), std::move(args));
  }
  void insert(index_t i, const T& x) const {
    ref_.call(caf::atom("insert"), {detail::pack_value(i), detail::pack_value<T>(x)});
  }
  T at(index_t i) const { return unpack(ref_.call_one(caf::atom("get"), {detail::pack_value(i)})); }
  void set(index_t i, const T& x) const {
    ref_.call(caf::atom("set"), {detail::pack_value(i), detail::pack_value<T>(x)});
  }
  // del l[i]
  void erase(index_t i) const { ref_.call(caf::atom("del"), {detail::pack_value(i)}); }
  // l[start:stop]; nullopt is an open end.
  std::vector<T> slice(std::optional<index_t> start, std::optional<index_t> stop = {}) const {
    return detail::unpack_values<T>(
      ref_.call(caf::atom("slice"), {detail::pack_value(start), detail::pack_value(stop)}));
  }
  // Throws out_of_range on an empty list, as Python's IndexError.
  T pop() const { return unpack(ref_.call_one(caf::atom("pop"), {})); }
  T pop(index_t i) const { return unpack(ref_.call_one(caf::atom("pop"), {detail::pack_value(i)})); }
  // Throws not_found when absent, as Python's ValueError.
  void remove(const T& x) const { ref_.call(caf::atom("remove"), pack(x)); }
  std::size_t index(const T& x) const {
    return detail::unpack_value<std::uint64_t>(ref_.call_one(caf::atom("index"), pack(x)));
  }
  // index(x, start, stop): the first within l[start:stop].
  std::size_t index(const T& x, std::optional<index_t> start, std::optional<index_t> stop = {}) const {
    return detail::unpack_value<std::uint64_t>(ref_.call_one(
      caf::atom("index"),
      {detail::pack_value<T>(x), detail::pack_value(start), detail::pack_value(stop)}));
  }
  std::size_t count(const T& x) const {
    return detail::unpack_value<std::uint64_t>(ref_.call_one(caf::atom("count"), pack(x)));
  }
  bool contains(const T& x) const {
    return detail::unpack_value<bool>(ref_.call_one(caf::atom("has"), pack(x)));
  }
  std::size_t size() const {
    return detail::unpack_value<std::uint64_t>(ref_.call_one(caf::atom("len"), {}));
  }
  // Throws bad_arguments (Python's TypeError) when two items cannot be ordered; the list is
  // then unchanged.
  void sort(bool reverse = false) const {
    ref_.call(caf::atom("sort"), {detail::pack_value(reverse)});
  }
  void reverse() const { ref_.call(caf::atom("reverse"), {}); }
  void clear() const { ref_.call(caf::atom("clear"), {}); }
  // list(l): a snapshot.
  std::vector<T> copy() const { return detail::unpack_values<T>(ref_.call(caf::atom("all"), {})); }
  // What Python's print(l) shows: [9, 8, 7].
  std::string repr() const { return detail::reply_as_array(ref_.call(caf::atom("all"), {})).repr(); }

  void set_timeout(std::chrono::milliseconds t) { ref_.timeout(t); }
  const detail::manager_ref& ref() const { return ref_; }

private:
  friend class manager;
  friend struct detail::proxy_codec<list_proxy>;
  explicit list_proxy(detail::manager_ref ref) : ref_{std::move(ref)} { (void)registered_; }

  static detail::manager_args pack(const T& x) { return {detail::pack_value<T>(x)}; }
  static T unpack(const bytes& b) { return detail::unpack_value<T>(b); }

  detail::manager_ref ref_;
  inline static const bool registered_ = detail::register_message_type<list_proxy>();
};

template <class T>
std::ostream& operator<<(std::ostream& os, const list_proxy<T>& l) {
  return os << l.repr();
}

} // namespace mproc

template <class T>
struct mproc::wire::codec<mproc::list_proxy<T>> : mproc::detail::proxy_codec<mproc::list_proxy<T>> {
  static std::string name() { return "list_proxy<" + codec<T>::name() + ">"; }
};

template <class T>
struct caf::allowed_unsafe_message_type<mproc::list_proxy<T>> : std::true_type {};
