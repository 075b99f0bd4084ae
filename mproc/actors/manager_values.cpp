#include "mproc/actors/manager_values.hpp"

#include "mproc/serialization/unpack.hpp"

namespace mproc::detail {

void throw_manager_codec(const std::string& what, const std::string& why) {
  throw error(make_error(errc::bad_message, what + ": " + why), what + ": " + why);
}

msgpack::object_handle unpack_manager_value(const bytes& b) {
  try {
    return wire::unpack_bounded(b.data(), b.size());
  } catch (const wire::unpack_error& e) {
    throw_manager_codec("a manager value is not msgpack", e.what());
  }
}

} // namespace mproc::detail
