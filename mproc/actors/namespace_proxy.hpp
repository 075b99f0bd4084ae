// A Namespace held by a Manager (Python's manager.Namespace()): named attributes of any
// sendable type, shared by every process holding the proxy.
//
//   auto ns = manager.namespace_();
//   ns.set("x", 10);                     // ns.x = 10
//   ns.get<int>("x");                    // ns.x; throws no_such_key (AttributeError)
//   std::cout << ns;                     // Namespace(x=10)
#pragma once

#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "mproc/actors/manager_ref.hpp"

namespace mproc {

class manager;

class namespace_proxy {
public:
  // An invalid proxy (for containers and decoding); every call on it throws.
  namespace_proxy() { (void)registered_; }

  template <class T>
  void set(std::string_view name, const T& x) const {
    ref_.call(caf::atom("set"), {key(name), detail::pack_value<detail::stored_t<T>>(x)});
  }
  template <class T>
  T get(std::string_view name) const {
    return detail::unpack_value<T>(ref_.call_one(caf::atom("getitem"), {key(name)}));
  }
  template <class T>
  std::optional<T> get_optional(std::string_view name) const {
    auto reply = ref_.call(caf::atom("get"), {key(name)});
    if (reply.empty())
      return std::nullopt;
    return detail::unpack_value<T>(reply.front());
  }
  bool has(std::string_view name) const;
  // del ns.name, without AttributeError: false when there was none.
  bool erase(std::string_view name) const;
  // The attributes' names, in the order they were first set.
  std::vector<std::string> names() const;
  // What Python's print(ns) shows: Namespace(a=1, b='x'), sorted by name.
  std::string repr() const;

  void set_timeout(std::chrono::milliseconds t) { ref_.timeout(t); }
  const detail::manager_ref& ref() const { return ref_; }

private:
  friend class manager;
  friend struct detail::proxy_codec<namespace_proxy>;
  explicit namespace_proxy(detail::manager_ref ref) : ref_{std::move(ref)} { (void)registered_; }
  static bytes key(std::string_view name) { return detail::pack_value(std::string{name}); }

  detail::manager_ref ref_;
  // In the class, so that a program using only its inline calls still registers the type.
  static const bool registered_;
};

std::ostream& operator<<(std::ostream& os, const namespace_proxy& ns);

} // namespace mproc

template <>
struct mproc::wire::codec<mproc::namespace_proxy>
    : mproc::detail::proxy_codec<mproc::namespace_proxy> {
  static std::string name() { return "namespace_proxy"; }
};

template <>
struct caf::allowed_unsafe_message_type<mproc::namespace_proxy> : std::true_type {};
