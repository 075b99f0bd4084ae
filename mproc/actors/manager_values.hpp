// How the keys, values and arguments a Manager holds become bytes and back: each is one
// msgpack value, encoded with its type's codec (serialization/codec.hpp). Plain data only:
// actor references and handles (a queue, a lock) cannot be stored in a manager.
#pragma once

#include <string>
#include <type_traits>

#include "mproc/runtime/errors.hpp"
#include "mproc/serialization/bytes.hpp"
#include "mproc/serialization/codec.hpp"

namespace mproc::detail {

[[noreturn]] void throw_manager_codec(const std::string& what, const std::string& why);
// The msgpack value in `b`, or mproc::error bad_message.
msgpack::object_handle unpack_manager_value(const bytes& b);

// What an argument is stored as: a C string as std::string, anything else as itself.
template <class T>
using stored_t = std::conditional_t<std::is_same_v<std::decay_t<T>, const char*>
                                      || std::is_same_v<std::decay_t<T>, char*>,
                                    std::string, std::decay_t<T>>;

// Throws mproc::error bad_message when `x` cannot be encoded without a link (an actor).
template <class T>
bytes pack_value(const T& x) {
  wire::buffer buf;
  wire::packer pk{buf};
  wire::codec_state st;
  wire::codec<T>::encode(pk, x, st);
  if (!st.ok())
    throw_manager_codec("cannot store a " + wire::codec<T>::name() + " in a manager", st.error);
  return bytes(buf.data(), buf.data() + buf.size());
}

// Throws mproc::error bad_message when the bytes do not hold a T (another process stored
// something else under the name, say).
template <class T>
T unpack_value(const bytes& b) {
  auto h = unpack_manager_value(b);
  T out = wire::blank_value<T>();
  wire::codec_state st;
  if (!wire::codec<T>::decode(h.get(), out, st))
    throw_manager_codec("the manager holds no " + wire::codec<T>::name() + " here", st.error);
  return out;
}

} // namespace mproc::detail
