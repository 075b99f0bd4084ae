// libFuzzer harness for unpack_bounded (serialization/unpack.hpp) and the value codec
// (serialization/codec.hpp).
//
// Input: any bytes. They are unpacked with the receiver's bounds, then decoded as each of a
// few representative types. Decoding must succeed or say why, never crash; and a value that
// decoded must be stable: encode(decode(encode(x))) == encode(x), byte for byte (bytes, not
// values, so NaN compares equal to itself).
#include <cstdint>
#include <cstdlib>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "mproc/serialization/codec.hpp"
#include "mproc/serialization/unpack.hpp"
#include "mproc/serialization/value.hpp"

namespace {

struct reading {
  std::string sensor;
  std::vector<double> values;
  std::optional<std::int32_t> id;
  std::map<std::string, std::string> tags;
  MSGPACK_DEFINE(sensor, values, id, tags);
};

struct batch {
  std::uint64_t seq = 0;
  std::vector<reading> readings;
  float weight = 0;
  MSGPACK_DEFINE(seq, readings, weight);
};

} // namespace

template <>
struct mproc::wire::user_type_name<reading> {
  static constexpr const char* value = "reading";
};
template <>
struct mproc::wire::user_type_name<batch> {
  static constexpr const char* value = "batch";
};

namespace {

using namespace mproc::wire;

// The encoding of x; nothing when it is nested deeper than a sender sends (a receiver
// reads two levels more than a sender sends, which leaves room for handles' small arrays).
template <class T>
std::optional<std::string> encoded(const T& x) {
  buffer buf;
  packer pk{buf};
  codec_state st;
  encode_value(pk, x, st);
  if (!st.ok() && st.error.find("nested deeper") != std::string::npos)
    return std::nullopt;
  if (!st.ok())
    std::abort();
  return std::string{buf.data(), buf.size()};
}

template <class T>
void try_type(const msgpack::object& o) {
  T x{};
  codec_state st;
  if (!decode_value(o, x, st)) {
    if (st.ok())  // a failure always says why
      std::abort();
    return;
  }
  auto encoding = encoded(x);
  if (!encoding)
    return;
  const auto& first = *encoding;
  auto handle = unpack_bounded(first.data(), first.size());
  T y{};
  codec_state st2;
  if (!decode_value(handle.get(), y, st2) || encoded(y) != first)
    std::abort();
}

template <class... Ts>
void try_types(const msgpack::object& o) {
  (try_type<Ts>(o), ...);
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  msgpack::object_handle handle;
  try {
    handle = unpack_bounded(reinterpret_cast<const char*>(data), size);
  } catch (const unpack_error&) {
    return 0;
  }
  const auto& o = handle.get();
  try_types<bool, std::int8_t, std::int32_t, std::int64_t, std::uint16_t, std::uint64_t, float,
            double, std::string, mproc::bytes>(o);
  try_types<std::vector<std::int32_t>, std::vector<double>, std::vector<std::string>,
            std::set<std::string>, std::map<std::string, std::vector<double>>,
            std::map<std::int64_t, std::optional<float>>, std::optional<std::string>,
            std::vector<std::optional<std::vector<std::uint8_t>>>>(o);
  try_types<std::tuple<std::int32_t, std::string, double>, std::pair<std::string, std::uint64_t>,
            std::tuple<>, reading, batch, std::vector<batch>, mproc::value>(o);
  // Whatever a value holds, it prints, compares with itself, and orders or says why not.
  mproc::value v;
  codec_state vs;
  if (decode_value(o, v, vs)) {
    (void)v.repr();
    (void)(v == v);
    try {
      (void)compare(v, v);
    } catch (const std::invalid_argument&) {
    }
  }
  // Order of an unordered_map is not stable across instances: decoding is all it can check.
  std::unordered_map<std::int32_t, std::string> h;
  codec_state st;
  if (!decode_value(o, h, st) && st.ok())
    std::abort();
  return 0;
}
