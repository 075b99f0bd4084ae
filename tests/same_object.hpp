// Whether two msgpack objects hold the same value. msgpack-c's operator== passes a null
// pointer to memcmp for an empty string (undefined behaviour, which the fuzzers' sanitizer
// reports), so tests and fuzz harnesses compare with this instead.
#pragma once

#include <string_view>

#include <msgpack.hpp>

namespace mproc::testing {

inline bool same_object(const msgpack::object& a, const msgpack::object& b) {
  using msgpack::type::object_type;
  if (a.type != b.type)
    return false;
  auto text = [](const char* p, std::uint32_t n) { return std::string_view{n ? p : "", n}; };
  switch (a.type) {
    case object_type::NIL:
      return true;
    case object_type::BOOLEAN:
      return a.via.boolean == b.via.boolean;
    case object_type::POSITIVE_INTEGER:
      return a.via.u64 == b.via.u64;
    case object_type::NEGATIVE_INTEGER:
      return a.via.i64 == b.via.i64;
    case object_type::FLOAT32:
    case object_type::FLOAT64:
      return a.via.f64 == b.via.f64 || (a.via.f64 != a.via.f64 && b.via.f64 != b.via.f64);
    case object_type::STR:
      return text(a.via.str.ptr, a.via.str.size) == text(b.via.str.ptr, b.via.str.size);
    case object_type::BIN:
      return text(a.via.bin.ptr, a.via.bin.size) == text(b.via.bin.ptr, b.via.bin.size);
    case object_type::EXT:
      return a.via.ext.type() == b.via.ext.type()
             && text(a.via.ext.data(), a.via.ext.size) == text(b.via.ext.data(), b.via.ext.size);
    case object_type::ARRAY:
      if (a.via.array.size != b.via.array.size)
        return false;
      for (std::uint32_t i = 0; i < a.via.array.size; ++i)
        if (!same_object(a.via.array.ptr[i], b.via.array.ptr[i]))
          return false;
      return true;
    case object_type::MAP:
      if (a.via.map.size != b.via.map.size)
        return false;
      for (std::uint32_t i = 0; i < a.via.map.size; ++i)
        if (!same_object(a.via.map.ptr[i].key, b.via.map.ptr[i].key)
            || !same_object(a.via.map.ptr[i].val, b.via.map.ptr[i].val))
          return false;
      return true;
  }
  return false;
}

} // namespace mproc::testing
