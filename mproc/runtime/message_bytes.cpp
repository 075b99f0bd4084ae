#include "mproc/runtime/message_bytes.hpp"

#include "mproc/runtime/errors.hpp"
#include "mproc/runtime/internal/message_codec.hpp"
#include "mproc/serialization/unpack.hpp"

namespace mproc {

bytes to_bytes(const caf::message& msg) {
  wire::buffer buf;
  wire::packer pk{buf};
  wire::codec_state st;  // no context: actor references are refused
  if (!detail::encode_message(pk, msg, st))
    throw error(make_error(errc::unknown_message_type, st.error), st.error);
  return bytes(buf.data(), buf.data() + buf.size());
}

caf::message from_bytes(const bytes& data) {
  msgpack::object_handle handle;
  try {
    handle = wire::unpack_bounded(data.data(), data.size());
  } catch (const std::exception& e) {
    auto why = std::string{"not a message: "} + e.what();
    throw error(make_error(errc::bad_message, why), why);
  }
  caf::message out;
  wire::codec_state st;
  auto status = detail::decode_message(handle.get(), out, st);
  if (status != detail::decode_status::ok) {
    auto code = status == detail::decode_status::unknown_type ? errc::unknown_message_type
                                                               : errc::bad_message;
    throw error(make_error(code, st.error), st.error);
  }
  return out;
}

} // namespace mproc
