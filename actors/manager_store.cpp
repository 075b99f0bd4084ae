#include "actors/manager_store.hpp"

#include "serialization/unpack.hpp"

namespace mproc::detail {

namespace {

msgpack::object_handle unpacked(const bytes& arg) {
  try {
    return wire::unpack_bounded(arg.data(), arg.size());
  } catch (const wire::unpack_error& e) {
    throw op_error(errc::bad_message, e.what());
  }
}

template <class T>
T decoded(const bytes& arg, const char* what) {
  auto h = unpacked(arg);
  T out{};
  wire::codec_state st;
  if (!wire::codec<T>::decode(h.get(), out, st))
    throw op_error(errc::bad_arguments, std::string{"expected "} + what + ": " + st.error);
  return out;
}

template <class T>
bytes encode_one(const T& x) {
  wire::buffer buf;
  wire::packer pk{buf};
  wire::codec_state st;
  wire::codec<T>::encode(pk, x, st);
  return bytes(buf.data(), buf.data() + buf.size());
}

} // namespace

void expect_args(const manager_args& args, std::size_t n, std::size_t max, const char* op) {
  if (args.size() < n || args.size() > max)
    throw op_error(errc::bad_arguments, std::string{op} + " takes " + std::to_string(n)
                                          + (max > n ? " to " + std::to_string(max) : "")
                                          + " arguments, not " + std::to_string(args.size()));
}

std::int64_t int_arg(const bytes& arg) { return decoded<std::int64_t>(arg, "an integer"); }

std::optional<std::int64_t> optional_int_arg(const bytes& arg) {
  return decoded<std::optional<std::int64_t>>(arg, "an integer or nil");
}

bool bool_arg(const bytes& arg) { return decoded<bool>(arg, "a bool"); }

std::string string_arg(const bytes& arg) { return decoded<std::string>(arg, "a string"); }

value value_arg(const bytes& arg) { return decoded<value>(arg, "a msgpack value"); }

void canonicalize(bytes& arg) {
  arg = encode_one(decoded<value>(arg, "a msgpack value"));
}

bytes encoded(std::uint64_t x) { return encode_one(x); }
bytes encoded(bool x) { return encode_one(x); }
bytes encoded(const value& x) { return encode_one(x); }

} // namespace mproc::detail
