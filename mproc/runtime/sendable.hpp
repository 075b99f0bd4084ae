// What may cross processes as a message element, checked where mproc builds a message from
// a caller's values (spawn, spawn_process, request, a pipe's send): a built-in, or a type
// with MPROC_MESSAGE (message_types.hpp).
#pragma once

#include <type_traits>
#include <utility>

#include <caf/make_message.hpp>
#include <caf/message.hpp>

#include "mproc/serialization/bytes.hpp"

namespace mproc::detail {

// As caf::make_message stores T: a string literal as std::string.
template <class T>
inline constexpr bool sendable = caf::is_serializable_or_whitelisted<
  typename caf::unbox_message_element<
    typename caf::detail::strip_and_convert<T>::type>::type>::value;

// A message keeps its own copy of the bytes a caller still holds. A large one is copied into
// memory asked for in huge pages (wire::assign_large): a 64 MiB request argument copied
// into fresh 4 KiB pages took 0.35-0.6 s here, page faults nearly all of it.
template <class T>
decltype(auto) element_of(T&& x) {
  if constexpr (std::is_same_v<std::remove_cvref_t<T>, bytes>
                && !std::is_rvalue_reference_v<T&&>) {
    bytes copy;
    wire::assign_large(copy, x.data(), x.size());
    return copy;
  } else {
    return std::forward<T>(x);
  }
}

// caf::make_message, refusing a type that cannot cross in mproc's words (CAF's own
// assertion recommends CAF_ALLOW_UNSAFE_MESSAGE_TYPE, which would compile and then fail at
// run time: no codec).
template <class... Ts>
caf::message message_of(Ts&&... xs) {
  static_assert((sendable<Ts> && ...),
                "mproc: an argument's type cannot cross processes. Give your struct "
                "MSGPACK_DEFINE(its fields...) and add MPROC_MESSAGE(its type); at global "
                "scope (#include <mproc/runtime/message_types.hpp>); a container of it sent "
                "on its own needs its own MPROC_MESSAGE line");
  if constexpr (sizeof...(Ts) == 0)
    return caf::message{};
  else
    return caf::make_message(detail::element_of(std::forward<Ts>(xs))...);
}

} // namespace mproc::detail
