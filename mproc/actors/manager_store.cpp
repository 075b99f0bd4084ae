#include "mproc/actors/manager_store.hpp"

#include <algorithm>

#include "mproc/actors/manager_values.hpp"
#include "mproc/runtime/deadline.hpp"
#include "mproc/serialization/unpack.hpp"

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

} // namespace

void no_such_op(std::string_view kind, caf::atom_value op) {
  auto article = std::string_view{"aeiou"}.find(kind.front()) != std::string_view::npos ? "an " : "a ";
  throw op_error(errc::bad_arguments,
                 article + std::string{kind} + " has no operation '" + caf::to_string(op) + "'");
}

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

std::optional<std::chrono::milliseconds> wait_arg(const bytes& arg) {
  auto t = optional_int_arg(arg);
  if (!t || *t >= forever_beyond.count())
    return std::nullopt;  // a century or more is for ever: no timer that would overflow
  return std::chrono::milliseconds{std::max<std::int64_t>(*t, 0)};
}

value value_arg(const bytes& arg) { return decoded<value>(arg, "a msgpack value"); }

void canonicalize(bytes& arg) {
  arg = pack_value(decoded<value>(arg, "a msgpack value"));
}

bytes encoded(std::uint64_t x) { return pack_value(x); }
bytes encoded(bool x) { return pack_value(x); }
bytes encoded(const value& x) { return pack_value(x); }

} // namespace mproc::detail
