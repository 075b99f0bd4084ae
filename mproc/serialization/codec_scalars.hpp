// The codec's concept (codec.hpp says what a codec is): the state of one encode or decode
// pass, payloads a frame borrows (borrowed_span), the codecs of scalars, strings and bytes,
// and encode_value/decode_value.
#pragma once

#include <bit>
#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

#include <msgpack.hpp>

#include "mproc/serialization/bytes.hpp"
#include "mproc/serialization/protocol.hpp"
#include "mproc/serialization/unpack.hpp"

namespace mproc::wire {

using buffer = msgpack::sbuffer;
using packer = msgpack::packer<msgpack::sbuffer>;

// Defined by the runtime: resolves actor references while a message is encoded or decoded.
class context;

// A large payload that a frame sends from where it lies instead of copying it into its
// buffer: it goes out after the buffer's first `at` bytes.
struct borrowed_span {
  std::size_t at;
  const char* data;
  std::size_t size;
};

// Below this a copy into the buffer is cheaper than an extra piece in the write.
inline constexpr std::size_t borrow_min = std::size_t{64} << 10;

// Carries the context and the first failure of one encode or decode pass.
struct codec_state {
  context* ctx = nullptr;
  std::string error;
  // Set by a frame that can send payloads from where they lie (see borrow).
  std::vector<borrowed_span>* borrowed = nullptr;
  const buffer* buf = nullptr;
  // File descriptors that travel with the frame (SCM_RIGHTS, local links only; null
  // elsewhere). Encoding appends descriptors the frame then owns; decoding finds the
  // frame's descriptors here and takes one by setting it to -1.
  std::vector<int>* descriptors = nullptr;
  // Encoding: steps to finish once the frame is handed to its link (true) or dropped (false),
  // e.g. a pipe end closes here only once the frame carrying it goes out.
  std::vector<std::function<void(bool sent)>>* settle = nullptr;

  // Encoding: records `size` bytes at `data` to go out at the buffer's current end rather
  // than be copied into it, when a frame allows it and the payload is large. The caller
  // packs the header either way and the body only when this is false; the frame keeps
  // what `data` points into alive until it is written.
  bool borrow(const char* data, std::size_t size) {
    if (borrowed == nullptr || size < borrow_min)
      return false;
    borrowed->push_back({buf->size(), data, size});
    return true;
  }

  // Encoding: the arrays and maps open around what is being packed (a frame's envelope
  // counts as one), kept by `nested`.
  std::uint32_t depth = 0;

  bool fail(std::string why) {
    if (error.empty())
      error = std::move(why);
    return false;
  }
  bool ok() const { return error.empty(); }
};

// One array or map level while encoding. A receiver refuses anything nested deeper than
// max_nesting, and since it cannot read such a frame it closes the link: the sender fails
// the one message instead. Two levels are left for the small arrays some handles pack
// without counting (a queue's [actor, maxsize] around an actor's [node, id]).
class nested {
public:
  explicit nested(codec_state& st) : st_(st) {
    if (++st_.depth == max_nesting - 1)
      st_.fail("the value is nested deeper than " + std::to_string(max_nesting - 2)
               + " levels of arrays and maps, which no receiver reads");
  }
  ~nested() { --st_.depth; }
  nested(const nested&) = delete;
  nested& operator=(const nested&) = delete;

private:
  codec_state& st_;
};

// Name of a msgpack object's type, for error messages.
const char* object_kind(const msgpack::object& o);
bool type_mismatch(codec_state& st, const std::string& expected, const msgpack::object& got);

// Specialised (by MPROC_MESSAGE) to give a user struct its wire name.
template <class T>
struct user_type_name;

template <class T, class Enable = void>
struct codec;

// The value decoding fills: T{}, unless codec<T> offers blank() (a handle whose default
// constructor would create what it refers to, e.g. a lock); tuples and pairs of them too.
template <class T>
struct blank_maker {
  static T make() {
    if constexpr (requires { codec<T>::blank(); })
      return codec<T>::blank();
    else
      return T{};
  }
};
template <class... Ts>
struct blank_maker<std::tuple<Ts...>> {
  static std::tuple<Ts...> make() { return {blank_maker<Ts>::make()...}; }
};
template <class A, class B>
struct blank_maker<std::pair<A, B>> {
  static std::pair<A, B> make() { return {blank_maker<A>::make(), blank_maker<B>::make()}; }
};
template <class T>
T blank_value() {
  return blank_maker<T>::make();
}

// ---- scalars ---------------------------------------------------------------------------

template <>
struct codec<bool> {
  static std::string name() { return "bool"; }
  static void encode(packer& pk, bool x, codec_state&) { pk.pack(x); }
  static bool decode(const msgpack::object& o, bool& out, codec_state& st) {
    if (o.type != msgpack::type::BOOLEAN)
      return type_mismatch(st, name(), o);
    out = o.via.boolean;
    return true;
  }
};

template <class T>
inline constexpr bool is_wire_integer_v = std::is_integral_v<T> && !std::is_same_v<T, bool>;

template <class T>
struct codec<T, std::enable_if_t<is_wire_integer_v<T>>> {
  static std::string name() {
    // Built in two steps: "i" + std::to_string(...) trips GCC 12's -Wrestrict at -O2.
    std::string out{std::is_signed_v<T> ? "i" : "u"};
    out += std::to_string(8 * sizeof(T));
    return out;
  }
  static void encode(packer& pk, T x, codec_state&) { pk.pack(x); }
  static bool decode(const msgpack::object& o, T& out, codec_state& st) {
    using lim = std::numeric_limits<T>;
    if (o.type == msgpack::type::POSITIVE_INTEGER) {
      if (o.via.u64 > static_cast<std::uint64_t>(lim::max()))
        return st.fail(std::to_string(o.via.u64) + " does not fit in " + name());
      out = static_cast<T>(o.via.u64);
      return true;
    }
    if (o.type == msgpack::type::NEGATIVE_INTEGER) {
      if (!std::is_signed_v<T> || o.via.i64 < static_cast<std::int64_t>(lim::min()))
        return st.fail(std::to_string(o.via.i64) + " does not fit in " + name());
      out = static_cast<T>(o.via.i64);
      return true;
    }
    return type_mismatch(st, name(), o);
  }
};

template <class T>
struct codec<T, std::enable_if_t<std::is_floating_point_v<T>>> {
  static_assert(sizeof(T) == 4 || sizeof(T) == 8, "only float and double cross the wire");
  static std::string name() { return sizeof(T) == 4 ? "f32" : "f64"; }
  // Always a msgpack float32/float64. msgpack-c 4.1.3's pack_float/pack_double turn a
  // whole-number float into an integer, which loses -0.0 and converts 2^64 to uint64_t
  // (undefined behaviour: their range check rounds UINT64_MAX up to 2^64). No macro turns
  // that off, so the header byte and the big-endian bits are written here; pack_bin_body
  // appends raw bytes and nothing else.
  static void encode(packer& pk, T x, codec_state&) {
    using bits_t = std::conditional_t<sizeof(T) == 4, std::uint32_t, std::uint64_t>;
    auto bits = std::bit_cast<bits_t>(x);
    char raw[1 + sizeof(T)];
    raw[0] = static_cast<char>(sizeof(T) == 4 ? 0xca : 0xcb);
    for (std::size_t i = 0; i < sizeof(T); ++i)
      raw[1 + i] = static_cast<char>(bits >> (8 * (sizeof(T) - 1 - i)));
    pk.pack_bin_body(raw, sizeof raw);
  }
  // Integers are accepted too: clients in other languages often send 1 for 1.0.
  static bool decode(const msgpack::object& o, T& out, codec_state& st) {
    switch (o.type) {
      case msgpack::type::FLOAT32:
      case msgpack::type::FLOAT64: out = static_cast<T>(o.via.f64); return true;
      case msgpack::type::POSITIVE_INTEGER: out = static_cast<T>(o.via.u64); return true;
      case msgpack::type::NEGATIVE_INTEGER: out = static_cast<T>(o.via.i64); return true;
      default: return type_mismatch(st, name(), o);
    }
  }
};

// A str (bin = false) or bin value: its header, then its body unless the frame borrows it.
// msgpack counts their bytes in 32 bits: a larger value fails rather than being cut.
inline void pack_raw(packer& pk, codec_state& st, const char* data, std::size_t size, bool bin) {
  if (size > std::numeric_limits<std::uint32_t>::max()) {
    st.fail(std::string{bin ? "bytes" : "a string"} + " of " + std::to_string(size)
            + " bytes: msgpack's limit is 4 GiB");
    pk.pack_nil();
    return;
  }
  auto n = static_cast<std::uint32_t>(size);
  bin ? pk.pack_bin(n) : pk.pack_str(n);
  if (!st.borrow(data, size))
    bin ? pk.pack_bin_body(data, n) : pk.pack_str_body(data, n);
}

template <>
struct codec<std::string> {
  static std::string name() { return "str"; }
  static void encode(packer& pk, const std::string& x, codec_state& st) {
    pack_raw(pk, st, x.data(), x.size(), false);
  }
  static bool decode(const msgpack::object& o, std::string& out, codec_state& st) {
    if (o.type != msgpack::type::STR)
      return type_mismatch(st, name(), o);
    out.assign(o.via.str.ptr, o.via.str.size);
    return true;
  }
};

using mproc::bytes;

template <>
struct codec<bytes> {
  static std::string name() { return "bytes"; }
  static void encode(packer& pk, const bytes& x, codec_state& st) {
    pack_raw(pk, st, x.data(), x.size(), true);
  }
  static bool decode(const msgpack::object& o, bytes& out, codec_state& st) {
    if (o.type != msgpack::type::BIN)
      return type_mismatch(st, name(), o);
    assign_large(out, o.via.bin.ptr, o.via.bin.size);
    return true;
  }
};

// ---- whole-value helpers ---------------------------------------------------------------

template <class T>
void encode_value(packer& pk, const T& x, codec_state& st) {
  codec<T>::encode(pk, x, st);
}

template <class T>
bool decode_value(const msgpack::object& o, T& out, codec_state& st) {
  return codec<T>::decode(o, out, st);
}

} // namespace mproc::wire
