// An object of a registered class held by a Manager (actors/managed_type.hpp): its methods
// run in the manager's process, one call at a time.
//
//   auto hits = manager.object<counter>("hits");
//   hits.call<&counter::add>(5);                // typed: arguments converted at compile time
//   hits.call<std::int64_t>("add", 5);          // by name, as a client without the class
//
// object_proxy<> (no class) offers the by-name call only: for a manager whose program
// registered classes this one does not have.
#pragma once

#include <string>
#include <type_traits>

#include "mproc/actors/managed_type.hpp"
#include "mproc/actors/manager_ref.hpp"
#include "mproc/runtime/message_types.hpp"
#include "mproc/serialization/type_registry.hpp"

namespace mproc {

class manager;

template <class T = void>
class object_proxy {
public:
  // An invalid proxy (for containers and decoding); every call on it throws.
  object_proxy() { (void)registered_; }

  template <auto M, class... Args>
    requires(!std::is_void_v<T>)
  auto call(Args&&... args) const {
    using traits = detail::method_traits<decltype(M)>;
    static_assert(std::is_same_v<typename traits::object, T>, "a method of another class");
    if (detail::managed_method_name<M> == nullptr)
      detail::throw_managed_arity("a method without an MPROC_MANAGED line", 0, 0);
    return call_as<typename traits::result>(typename traits::args{}, detail::managed_method_name<M>,
                                            std::forward<Args>(args)...);
  }

  template <class R, class... Args>
  R call(std::string_view method, const Args&... args) const {
    auto reply = ref_.call(caf::atom("call"), detail::pack_values(std::string{method}, args...));
    if constexpr (!std::is_void_v<R>) {
      if (reply.size() != 1)
        detail::throw_manager_codec(std::string{method} + "'s answer", "no value");
      return detail::unpack_value<R>(reply.front());
    }
  }

  // The names of the methods the manager's process registered.
  std::vector<std::string> methods() const {
    return detail::unpack_values<std::string>(ref_.call(caf::atom("methods"), {}));
  }

  void set_timeout(std::chrono::milliseconds t) { ref_.timeout(t); }
  const detail::manager_ref& ref() const { return ref_; }

private:
  friend class manager;
  friend struct detail::proxy_codec<object_proxy>;
  explicit object_proxy(detail::manager_ref ref) : ref_{std::move(ref)} { (void)registered_; }

  // Converts each argument to the method's parameter type before packing it.
  template <class R, class... Params, class... Args>
  R call_as(std::tuple<Params...>, const char* method, Args&&... args) const {
    static_assert(sizeof...(Params) == sizeof...(Args), "wrong number of arguments");
    return call<R>(method, static_cast<Params>(std::forward<Args>(args))...);
  }

  detail::manager_ref ref_;
  inline static const bool registered_ = detail::register_message_type<object_proxy>();
};

} // namespace mproc

template <class T>
struct mproc::wire::codec<mproc::object_proxy<T>>
    : mproc::detail::proxy_codec<mproc::object_proxy<T>> {
  static std::string name() {
    if constexpr (std::is_void_v<T>)
      return "object_proxy";
    else
      return "object_proxy<" + demangle(typeid(T).name()) + ">";
  }
};

template <class T>
struct caf::allowed_unsafe_message_type<mproc::object_proxy<T>> : std::true_type {};
