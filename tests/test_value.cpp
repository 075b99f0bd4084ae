// mproc::value: Python's repr, Python's equality and ordering, and the msgpack round trip.
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>

#include "mproc/serialization/unpack.hpp"
#include "mproc/serialization/value.hpp"

using mproc::value;

namespace {

value round_trip(const value& v) {
  mproc::wire::buffer buf;
  mproc::wire::packer pk{buf};
  mproc::wire::codec_state st;
  mproc::wire::codec<value>::encode(pk, v, st);
  REQUIRE(st.ok());
  auto h = mproc::wire::unpack_bounded(buf.data(), buf.size());
  value out;
  REQUIRE(mproc::wire::codec<value>::decode(h.get(), out, st));
  return out;
}

std::string packed(const value& v) {
  mproc::wire::buffer buf;
  mproc::wire::packer pk{buf};
  mproc::wire::codec_state st;
  mproc::wire::codec<value>::encode(pk, v, st);
  return {buf.data(), buf.size()};
}

} // namespace

TEST_CASE("a value prints as Python's repr prints the same data") {
  value tutorial = value::map_t{{1, "1"}, {"2", 2}, {0.25, nullptr}};
  CHECK(tutorial.repr() == "{1: '1', '2': 2, 0.25: None}");
  CHECK(value{value::array_t{true, false, -3, std::uint64_t{18446744073709551615u}}}.repr()
        == "[True, False, -3, 18446744073709551615]");
  CHECK(value{value::map_t{}}.repr() == "{}");
  CHECK(value{"it's"}.repr() == "\"it's\"");
  CHECK(value{"say \"hi\" it's"}.repr() == "'say \"hi\" it\\'s'");
  CHECK(value{"tab\tnew\nline\\ \x01"}.repr() == "'tab\\tnew\\nline\\\\ \\x01'");
  CHECK(value{"été"}.repr() == "'été'");
  CHECK(value{"nbsp\u00a0 c1\u0085 shy\u00ad ok\u00ae"}.repr()
        == "'nbsp\\xa0 c1\\x85 shy\\xad ok\u00ae'");
  CHECK(value{std::string{"bad\xff"}}.repr() == "'bad\\xff'");
  CHECK(value{mproc::bytes{'a', '\0', '\xff', '\''}}.repr() == "b\"a\\x00\\xff'\"");
}

TEST_CASE("floats print with Python's shortest repr and its switch to exponents") {
  auto r = [](double x) { return value{x}.repr(); };
  CHECK(r(0.25) == "0.25");
  CHECK(r(1.0) == "1.0");
  CHECK(r(-0.0) == "-0.0");
  CHECK(r(100000.0) == "100000.0");
  CHECK(r(1e15) == "1000000000000000.0");
  CHECK(r(1e16) == "1e+16");
  CHECK(r(9999999999999998.0) == "9999999999999998.0");
  CHECK(r(1.5e300) == "1.5e+300");
  CHECK(r(0.0001) == "0.0001");
  CHECK(r(1e-05) == "1e-05");
  CHECK(r(0.1) == "0.1");
  CHECK(r(1.0 / 3) == "0.3333333333333333");
  CHECK(r(123456789.125) == "123456789.125");
  CHECK(r(std::numeric_limits<double>::infinity()) == "inf");
  CHECK(r(std::nan("")) == "nan");
}

TEST_CASE("values compare as Python's do") {
  CHECK(value{1} == value{1.0});
  CHECK(value{true} == value{1});
  CHECK(value{"1"} != value{1});
  CHECK(value{std::nan("")} != value{std::nan("")});
  CHECK(value{value::map_t{{"a", 1}, {"b", 2}}} == value{value::map_t{{"b", 2}, {"a", 1.0}}});
  CHECK(std::is_lt(compare(value{2}, value{2.5})));
  CHECK(std::is_gt(compare(value{std::uint64_t{18446744073709551615u}}, value{-1})));
  CHECK(std::is_lt(compare(value{"abc"}, value{"abd"})));
  CHECK(std::is_lt(compare(value{value::array_t{1, 2}}, value{value::array_t{1, 2, 0}})));
  CHECK(std::is_lt(compare(value{mproc::bytes{'\x01'}}, value{mproc::bytes{'\xff'}})));
  CHECK(std::is_eq(compare(value{mproc::bytes{}}, value{mproc::bytes{}})));
  CHECK(std::is_lt(compare(value{mproc::bytes{}}, value{mproc::bytes{'\0'}})));
  // The first pair that is not == decides, so equal unorderable items are fine.
  CHECK(std::is_eq(compare(value{value::array_t{nullptr}}, value{value::array_t{nullptr}})));
  CHECK(std::is_gt(compare(value{value::array_t{nullptr, 3}}, value{value::array_t{nullptr, 1}})));
  CHECK(std::is_eq(compare(value{std::nan("")}, value{std::nan("")})));  // NaN sorts last, together
  CHECK(std::is_gt(compare(value{std::nan("")}, value{1e300})));
  CHECK_THROWS_WITH(compare(value{"a"}, value{1}),
                    "'<' not supported between instances of 'str' and 'int'");
  CHECK_THROWS_AS(compare(value{}, value{}), std::invalid_argument);
}

TEST_CASE("as<T> converts what fits and names what does not") {
  CHECK(value{7}.as<std::int32_t>() == 7);
  CHECK(value{7}.as<double>() == 7.0);
  CHECK(value{"x"}.as<std::string>() == "x");
  CHECK_THROWS_WITH(value{"x"}.as<std::int64_t>(), "mproc::value: wanted int, holds str 'x'");
  CHECK_THROWS_AS(value{300}.as<std::uint8_t>(), std::invalid_argument);
  CHECK_THROWS_AS(value{-1}.as<std::uint64_t>(), std::invalid_argument);
}

TEST_CASE("a value's float goes as float32 when that holds it exactly, else as float64") {
  CHECK(packed(2.5) == std::string{"\xca\x40\x20\x00\x00", 5});  // packed again, never grows
  CHECK(packed(-0.0) == std::string{"\xca\x80\x00\x00\x00", 5});
  CHECK(packed(3.0) == std::string{"\xca\x40\x40\x00\x00", 5});  // a float, not the int 3
  CHECK(packed(0.1).size() == 9);                                  // not exact as a float32
  CHECK(packed(1e300).size() == 9);                                // beyond float32's range
  CHECK(packed(std::numeric_limits<double>::denorm_min()).size() == 9);
  CHECK(packed(std::numeric_limits<double>::infinity()).size() == 5);
  CHECK(packed(static_cast<double>(std::numeric_limits<float>::max())).size() == 5);
  for (double x : {2.5, -0.0, 3.0, 0.1, 1e300, static_cast<double>(0.1f),
                   std::numeric_limits<double>::denorm_min(),
                   -std::numeric_limits<double>::infinity()}) {
    auto back = round_trip(value{x}).as<double>();
    CHECK(back == x);
    CHECK(std::signbit(back) == std::signbit(x));
  }
  CHECK(std::isnan(round_trip(value{std::numeric_limits<double>::quiet_NaN()}).as<double>()));
}

TEST_CASE("a value crosses msgpack unchanged, whatever it holds") {
  value v = value::map_t{{1, "1"},
                         {"2", value::array_t{2, 2.5, nullptr, true}},
                         {0.25, mproc::bytes{'\0', 'x'}},
                         {std::numeric_limits<std::int64_t>::min(),
                          std::numeric_limits<std::uint64_t>::max()}};
  auto back = round_trip(v);
  CHECK(back.repr() == v.repr());
  CHECK(back == v);
}

TEST_CASE("a value refuses msgpack ext, naming it") {
  msgpack::sbuffer buf;
  msgpack::packer<msgpack::sbuffer> pk{buf};
  pk.pack_array(1);
  pk.pack_ext(1, 5);
  pk.pack_ext_body("x", 1);
  auto h = mproc::wire::unpack_bounded(buf.data(), buf.size());
  value out;
  mproc::wire::codec_state st;
  CHECK_FALSE(mproc::wire::codec<value>::decode(h.get(), out, st));
  CHECK(st.error.find("ext") != std::string::npos);
}
