#include "mproc/serialization/codec.hpp"

#include <cmath>

#include <catch2/catch.hpp>

namespace {

struct point {
  std::int32_t x = 0;
  std::int32_t y = 0;
  bool operator==(const point&) const = default;
  MSGPACK_DEFINE(x, y);
};

struct shape {
  std::string name;
  std::vector<point> corners;
  std::optional<double> area;
  std::map<std::string, std::int64_t> tags;
  bool operator==(const shape&) const = default;
  MSGPACK_DEFINE(name, corners, area, tags);
};

} // namespace

template <>
struct mproc::wire::user_type_name<point> {
  static constexpr const char* value = "point";
};
template <>
struct mproc::wire::user_type_name<shape> {
  static constexpr const char* value = "shape";
};

using namespace mproc::wire;

namespace {

template <class T>
msgpack::object_handle encode(const T& value) {
  buffer buf;
  packer pk{buf};
  codec_state st;
  encode_value(pk, value, st);
  REQUIRE(st.ok());
  return msgpack::unpack(buf.data(), buf.size());
}

template <class T>
T roundtrip(const T& value) {
  auto handle = encode(value);
  T out{};
  codec_state st;
  INFO(st.error);
  REQUIRE(decode_value(handle.get(), out, st));
  return out;
}

template <class T, class U>
std::string decode_error_of(const U& wrong) {
  auto handle = encode(wrong);
  T out{};
  codec_state st;
  CHECK_FALSE(decode_value(handle.get(), out, st));
  return st.error;
}

} // namespace

TEST_CASE("every scalar built-in round-trips, extremes included") {
  CHECK(roundtrip(true) == true);
  CHECK(roundtrip(false) == false);
  CHECK(roundtrip(std::numeric_limits<std::int8_t>::min()) == -128);
  CHECK(roundtrip(std::numeric_limits<std::int16_t>::max()) == 32767);
  CHECK(roundtrip(std::numeric_limits<std::int32_t>::min()) == std::numeric_limits<std::int32_t>::min());
  CHECK(roundtrip(std::numeric_limits<std::int64_t>::min()) == std::numeric_limits<std::int64_t>::min());
  CHECK(roundtrip(std::numeric_limits<std::uint8_t>::max()) == 255);
  CHECK(roundtrip(std::numeric_limits<std::uint16_t>::max()) == 65535);
  CHECK(roundtrip(std::numeric_limits<std::uint32_t>::max()) == 4294967295u);
  CHECK(roundtrip(std::numeric_limits<std::uint64_t>::max()) == std::numeric_limits<std::uint64_t>::max());
  CHECK(roundtrip(1.5f) == 1.5f);
  CHECK(roundtrip(-2.25) == -2.25);
  CHECK(roundtrip(std::string{"héllo\0x", 7}) == std::string{"héllo\0x", 7});
  CHECK(roundtrip(bytes{'\0', '\xff', 'a'}) == bytes{'\0', '\xff', 'a'});
}

TEST_CASE("containers round-trip") {
  CHECK(roundtrip(std::vector<std::int32_t>{1, -2, 3}) == std::vector<std::int32_t>{1, -2, 3});
  CHECK(roundtrip(std::vector<std::string>{}).empty());
  CHECK(roundtrip(std::set<std::string>{"a", "b"}) == std::set<std::string>{"a", "b"});
  std::map<std::string, double> m{{"pi", 3.14}, {"e", 2.71}};
  CHECK(roundtrip(m) == m);
  std::unordered_map<std::int32_t, std::string> h{{1, "one"}, {2, "two"}};
  CHECK(roundtrip(h) == h);
  CHECK(roundtrip(std::optional<std::int32_t>{}) == std::nullopt);
  CHECK(roundtrip(std::optional<std::int32_t>{7}) == 7);
  auto t = std::make_tuple(std::int32_t{1}, std::string{"two"}, 3.0);
  CHECK(roundtrip(t) == t);
  auto p = std::make_pair(std::string{"k"}, std::uint64_t{9});
  CHECK(roundtrip(p) == p);
  std::vector<std::vector<std::optional<std::string>>> nested{{"a", std::nullopt}, {}};
  CHECK(roundtrip(nested) == nested);
}

TEST_CASE("a nested user struct round-trips") {
  shape s{"square", {{0, 0}, {0, 1}, {1, 1}, {1, 0}}, 1.0, {{"layer", 2}}};
  CHECK(roundtrip(s) == s);
  std::vector<shape> many{s, shape{"empty", {}, std::nullopt, {}}};
  CHECK(roundtrip(many) == many);
}

TEST_CASE("wire tags are structural and readable") {
  CHECK(codec<std::int32_t>::name() == "i32");
  CHECK(codec<std::uint8_t>::name() == "u8");
  CHECK(codec<double>::name() == "f64");
  CHECK(codec<bytes>::name() == "bytes");
  CHECK(codec<std::vector<point>>::name() == "vec<point>");
  CHECK(codec<std::map<std::string, std::optional<shape>>>::name() == "map<str,opt<shape>>");
  CHECK(codec<std::tuple<bool, float>>::name() == "tup<bool,f32>");
  CHECK(codec<std::pair<std::int64_t, std::string>>::name() == "pair<i64,str>");
}

TEST_CASE("a wrong type is an error naming what was expected") {
  CHECK(decode_error_of<std::int32_t>(std::string{"7"}) == "expected i32, got str");
  CHECK(decode_error_of<std::string>(std::int32_t{7}) == "expected str, got uint");
  CHECK(decode_error_of<bool>(1) == "expected bool, got uint");
  CHECK(decode_error_of<bytes>(std::string{"x"}) == "expected bytes, got str");
}

TEST_CASE("an integer that does not fit is an error, not a truncation") {
  CHECK(decode_error_of<std::uint8_t>(256) == "256 does not fit in u8");
  CHECK(decode_error_of<std::int8_t>(-129) == "-129 does not fit in i8");
  CHECK(decode_error_of<std::uint32_t>(-1) == "-1 does not fit in u32");
  CHECK(decode_error_of<std::int64_t>(std::numeric_limits<std::uint64_t>::max())
        == "18446744073709551615 does not fit in i64");
}

TEST_CASE("errors inside containers carry the path to the bad value") {
  CHECK(decode_error_of<std::vector<std::int32_t>>(std::make_tuple(1, 2, std::string{"x"}))
        == "vec<i32>[2]: expected i32, got str");
  CHECK(decode_error_of<std::tuple<std::int32_t, std::string>>(std::make_tuple(1))
        == "tup<i32,str> needs 2 fields, got 1");
}

TEST_CASE("a user struct with the wrong number of fields is an error") {
  CHECK(decode_error_of<point>(std::make_tuple(1)) == "point needs 2 fields, got 1");
  CHECK(decode_error_of<point>(std::make_tuple(1, 2, 3)) == "point needs 2 fields, got 3");
  CHECK(decode_error_of<point>(7) == "expected point (array), got uint");
}

TEST_CASE("a user struct with a field of the wrong type is an error, not an exception") {
  auto why = decode_error_of<point>(std::make_tuple(1, std::string{"two"}));
  CHECK(why.rfind("point: a field has the wrong type", 0) == 0);
}

TEST_CASE("floating point accepts integers from other languages") {
  auto h = encode(std::int32_t{3});
  double d = 0;
  codec_state st;
  CHECK(decode_value(h.get(), d, st));
  CHECK(d == 3.0);
}

namespace {

// The bytes encode_value writes for one value.
template <class T>
std::string wire_bytes(T value) {
  buffer buf;
  packer pk{buf};
  codec_state st;
  encode_value(pk, value, st);
  return {buf.data(), buf.size()};
}

} // namespace

TEST_CASE("floats cross as msgpack floats, whole numbers and -0.0 included") {
  // msgpack-c would pack these as integers: 3 and 0, and 2^64 through undefined behaviour.
  CHECK(wire_bytes(3.0) == std::string{"\xcb\x40\x08\x00\x00\x00\x00\x00\x00", 9});
  CHECK(wire_bytes(3.0f) == std::string{"\xca\x40\x40\x00\x00", 5});
  CHECK(wire_bytes(-0.0) == std::string{"\xcb\x80\x00\x00\x00\x00\x00\x00\x00", 9});
  CHECK(wire_bytes(-0.0f) == std::string{"\xca\x80\x00\x00\x00", 5});

  const double two64 = 18446744073709551616.0;
  CHECK(roundtrip(two64) == two64);
  CHECK(roundtrip(static_cast<float>(two64)) == static_cast<float>(two64));
  CHECK(roundtrip(-two64) == -two64);
  CHECK(roundtrip(1e300) == 1e300);
  CHECK(roundtrip(3.0f) == 3.0f);

  CHECK(std::signbit(roundtrip(-0.0)));
  CHECK(std::signbit(roundtrip(-0.0f)));
  CHECK_FALSE(std::signbit(roundtrip(0.0)));

  CHECK(std::isnan(roundtrip(std::numeric_limits<double>::quiet_NaN())));
  CHECK(std::isnan(roundtrip(std::numeric_limits<float>::quiet_NaN())));
  CHECK(roundtrip(std::numeric_limits<double>::infinity()) == std::numeric_limits<double>::infinity());
  CHECK(roundtrip(-std::numeric_limits<float>::infinity()) == -std::numeric_limits<float>::infinity());
  CHECK(roundtrip(std::numeric_limits<double>::denorm_min()) == std::numeric_limits<double>::denorm_min());
  CHECK(roundtrip(std::vector<double>{-0.0, 1.0, two64}) == std::vector<double>{-0.0, 1.0, two64});
}

TEST_CASE("a float field decodes a float64 and a double field a float32") {
  auto as_double = encode(1.5f);
  double d = 0;
  codec_state st;
  CHECK(decode_value(as_double.get(), d, st));
  CHECK(d == 1.5);
  auto as_float = encode(-0.25);
  float f = 0;
  CHECK(decode_value(as_float.get(), f, st));
  CHECK(f == -0.25f);
}

namespace {

struct sample {
  double value = 0;
  std::vector<float> history;
  point where;
  bool operator==(const sample&) const = default;
  MSGPACK_DEFINE(value, history, where);
};

} // namespace

template <>
struct mproc::wire::user_type_name<sample> {
  static constexpr const char* value = "sample";
};

TEST_CASE("float fields of user structs cross as msgpack floats too") {
  const double two64 = 18446744073709551616.0;
  sample s{-0.0, {2.0f, -0.0f, static_cast<float>(two64)}, {1, 2}};
  auto back = roundtrip(s);
  CHECK(back == s);
  CHECK(std::signbit(back.value));
  CHECK(std::signbit(back.history[1]));
  CHECK(roundtrip(sample{two64, {}, {}}).value == two64);
  // Same shape as msgpack-c's: [value, [history...], [x, y]], floats as float32/float64.
  CHECK(wire_bytes(sample{1.0, {}, {3, 4}})
        == std::string{"\x93\xcb\x3f\xf0\x00\x00\x00\x00\x00\x00\x90\x92\x03\x04", 14});
}
