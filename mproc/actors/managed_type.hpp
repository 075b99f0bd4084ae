// Classes whose objects a Manager holds, as Python's BaseManager.register: the object lives
// in the manager's process, and other processes call the methods registered here.
//
//   struct counter {
//     std::int64_t n = 0;
//     std::int64_t add(std::int64_t k) { return n += k; }
//     std::int64_t get() const { return n; }
//   };
//   MPROC_MANAGED(counter, add);    // at namespace scope, one line per method
//   MPROC_MANAGED(counter, get);
//
//   auto hits = manager.object<counter>("hits");   // default-constructed in the manager
//   hits.call<&counter::add>(5);                   // runs there, returns 5
//
// Arguments and results cross as msgpack with their codecs (any sendable plain data). A
// method that throws fails the call with errc::task_failed and its what(). The class needs
// a default constructor; the manager's process must be this program (it is, unless the
// manager runs on another machine built from other sources).
#pragma once

#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <typeinfo>
#include <utility>

#include "mproc/actors/manager_protocol.hpp"
#include "mproc/actors/manager_values.hpp"

namespace mproc::detail {

using managed_method = manager_reply (*)(void* object, manager_args& args);

struct managed_type_entry {
  std::string name;
  std::shared_ptr<void> (*make)();
  std::map<std::string, managed_method, std::less<>> methods;
};

// The entry of `type`, made on first use. Throws std::logic_error when `name` is taken by
// another type, or `type` was registered under another name.
managed_type_entry& managed_type_of(const std::type_info& type, const char* name,
                                    std::shared_ptr<void> (*make)());
void add_managed_method(managed_type_entry& entry, const char* method, managed_method fn);
// The type registered as `name`, or null.
const managed_type_entry* find_managed_type(std::string_view name);
// The name T was registered under (MPROC_MANAGED); throws mproc::error unknown_actor_name
// when it was not.
const std::string& managed_name_of(const std::type_info& type);

template <auto M>
inline const char* managed_method_name = nullptr;

template <class M>
struct method_traits;
template <class R, class T, class... A>
struct method_traits<R (T::*)(A...)> {
  using result = R;
  using object = T;
  using args = std::tuple<std::decay_t<A>...>;
};
template <class R, class T, class... A>
struct method_traits<R (T::*)(A...) const> : method_traits<R (T::*)(A...)> {};
template <class R, class T, class... A>
struct method_traits<R (T::*)(A...) noexcept> : method_traits<R (T::*)(A...)> {};
template <class R, class T, class... A>
struct method_traits<R (T::*)(A...) const noexcept> : method_traits<R (T::*)(A...)> {};

[[noreturn]] void throw_managed_arity(const char* method, std::size_t wanted, std::size_t got);

// What a registered method threw, whatever it was (an mproc::error too: a method's own
// timeout or lost process must not read as the manager's), for the caller's task_failed.
struct managed_method_raised : std::runtime_error {
  using std::runtime_error::runtime_error;
};
[[noreturn]] void rethrow_as_raised();  // in a catch block

template <class Tuple, std::size_t... Is>
Tuple unpack_arguments(const manager_args& args, std::index_sequence<Is...>) {
  return Tuple{unpack_value<std::tuple_element_t<Is, Tuple>>(args[Is])...};
}

template <class T, auto M>
manager_reply invoke_managed(void* object, manager_args& args) {
  using traits = method_traits<decltype(M)>;
  using tuple = typename traits::args;
  constexpr auto n = std::tuple_size_v<tuple>;
  if (args.size() != n)
    throw_managed_arity(managed_method_name<M>, n, args.size());
  auto decoded = unpack_arguments<tuple>(args, std::make_index_sequence<n>{});
  auto& self = *static_cast<T*>(object);
  auto run = [&](auto&... a) {
    try {
      return (self.*M)(std::move(a)...);
    } catch (...) {
      rethrow_as_raised();
    }
  };
  if constexpr (std::is_void_v<typename traits::result>) {
    std::apply(run, decoded);
    return {};
  } else {
    return {pack_value(std::apply(run, decoded))};
  }
}

template <class T, auto M>
bool register_managed(const char* type_name, const char* method) {
  static_assert(std::is_default_constructible_v<T>, "a managed class needs a default constructor");
  managed_method_name<M> = method;
  auto& entry = managed_type_of(typeid(T), type_name,
                                [] { return std::shared_ptr<void>{std::make_shared<T>()}; });
  add_managed_method(entry, method, &invoke_managed<T, M>);
  return true;
}

} // namespace mproc::detail

#define MPROC_MANAGED(type, method)                                                        \
  [[maybe_unused]] static const bool MPROC_MANAGED_CONCAT(mproc_managed_, __COUNTER__) =   \
    ::mproc::detail::register_managed<type, &type::method>(#type, #method)
#define MPROC_MANAGED_CONCAT_IMPL(a, b) a##b
#define MPROC_MANAGED_CONCAT(a, b) MPROC_MANAGED_CONCAT_IMPL(a, b)
