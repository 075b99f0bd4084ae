#include "serialization/codec.hpp"

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
