// libFuzzer harness for mproc::from_bytes (runtime/message_bytes.hpp): the bytes of a pipe
// item, decoded into a caf::message through the type registry and the message codec.
//
// Input: any bytes. from_bytes must return a message or throw mproc::error (bad_message,
// unknown_message_type), never crash; and what it returns must be stable:
// to_bytes(from_bytes(b)) decodes to a message that encodes to the same bytes.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "mproc/runtime/errors.hpp"
#include "mproc/runtime/internal/message_codec.hpp"
#include "mproc/runtime/message_bytes.hpp"
#include "mproc/runtime/message_types.hpp"

namespace {

struct job {
  std::int32_t id = 0;
  std::string text;
  std::vector<double> weights;
  MSGPACK_DEFINE(id, text, weights);
};

} // namespace

MPROC_MESSAGE(job);

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  mproc::detail::register_builtin_types();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  mproc::bytes input(reinterpret_cast<const char*>(data), reinterpret_cast<const char*>(data) + size);
  caf::message msg;
  try {
    msg = mproc::from_bytes(input);
  } catch (const mproc::error& e) {
    if (e.code() != mproc::errc::bad_message && e.code() != mproc::errc::unknown_message_type)
      std::abort();
    return 0;
  }
  mproc::bytes first;
  try {
    first = mproc::to_bytes(msg);
  } catch (const mproc::error&) {
    return 0;  // what only a node can encode: actor references
  }
  auto again = mproc::to_bytes(mproc::from_bytes(first));
  if (again != first)
    std::abort();
  return 0;
}
