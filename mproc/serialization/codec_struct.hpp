// The codec of a user struct: MSGPACK_DEFINE gives its fields, MPROC_MESSAGE its wire name
// (runtime/message_types.hpp).
#pragma once

#include <string>

#include "mproc/serialization/codec_containers.hpp"

namespace mproc::wire {

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
    nested level{st};  // the fields' array
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

} // namespace mproc::wire
