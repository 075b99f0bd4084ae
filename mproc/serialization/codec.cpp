#include "mproc/serialization/codec.hpp"

namespace mproc::wire {

const char* object_kind(const msgpack::object& o) {
  switch (o.type) {
    case msgpack::type::NIL: return "nil";
    case msgpack::type::BOOLEAN: return "bool";
    case msgpack::type::POSITIVE_INTEGER: return "uint";
    case msgpack::type::NEGATIVE_INTEGER: return "int";
    case msgpack::type::FLOAT32: return "f32";
    case msgpack::type::FLOAT64: return "f64";
    case msgpack::type::STR: return "str";
    case msgpack::type::BIN: return "bin";
    case msgpack::type::ARRAY: return "array";
    case msgpack::type::MAP: return "map";
    case msgpack::type::EXT: return "ext";
  }
  return "unknown";
}

bool type_mismatch(codec_state& st, const std::string& expected, const msgpack::object& got) {
  return st.fail("expected " + expected + ", got " + object_kind(got));
}

namespace detail {

bool expect_array(const msgpack::object& o, name_fn what, codec_state& st) {
  return o.type == msgpack::type::ARRAY || type_mismatch(st, what() + " (array)", o);
}

bool expect_map(const msgpack::object& o, name_fn what, codec_state& st) {
  return o.type == msgpack::type::MAP || type_mismatch(st, what() + " (map)", o);
}

bool at_index(codec_state& st, name_fn what, std::size_t i) {
  st.error = what() + "[" + std::to_string(i) + "]: " + st.error;
  return false;
}

} // namespace detail

} // namespace mproc::wire
