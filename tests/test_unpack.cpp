#include "mproc/serialization/unpack.hpp"

#include <catch2/catch.hpp>

#include "mproc/serialization/protocol.hpp"

using namespace mproc::wire;

namespace {

// `depth` arrays, each the only element of the one around it, around a nil. With the
// five-byte array32 header, 50,000 levels are 250 KB.
std::string nested_arrays(std::size_t depth, bool array32 = false) {
  std::string out;
  for (std::size_t i = 0; i < depth; ++i)
    out += array32 ? std::string{"\xdd\x00\x00\x00\x01", 5} : std::string{"\x91"};
  return out + "\xc0";
}

// `depth` maps, each {nil: the next}.
std::string nested_maps(std::size_t depth) {
  std::string out;
  for (std::size_t i = 0; i < depth; ++i)
    out += "\x81\xc0";
  return out + "\xc0";
}

std::string unpack_failure(const std::string& bytes) {
  try {
    unpack_bounded(bytes.data(), bytes.size());
  } catch (const unpack_error& e) {
    return e.what();
  }
  FAIL("unpacked without an error");
  return {};
}

} // namespace

TEST_CASE("a value nested max_nesting deep unpacks") {
  auto bytes = nested_arrays(max_nesting);
  auto handle = unpack_bounded(bytes.data(), bytes.size());
  const auto* o = &handle.get();
  std::size_t depth = 0;
  for (; o->type == msgpack::type::ARRAY; o = &o->via.array.ptr[0])
    ++depth;
  CHECK(depth == max_nesting);
  CHECK(o->type == msgpack::type::NIL);
  auto maps = nested_maps(max_nesting);
  CHECK_NOTHROW(unpack_bounded(maps.data(), maps.size()));
}

TEST_CASE("a value nested deeper than max_nesting is an unpack_error") {
  auto expected = "malformed msgpack: nested deeper than " + std::to_string(max_nesting) + " levels";
  CHECK(unpack_failure(nested_arrays(max_nesting + 1)) == expected);
  CHECK(unpack_failure(nested_maps(max_nesting + 1)) == expected);
  CHECK(unpack_failure(nested_arrays(50000, true)) == expected);
  CHECK(unpack_failure(nested_maps(50000)) == expected);
}

TEST_CASE("element counts beyond the input size are refused before anything is allocated") {
  CHECK(unpack_failure(std::string{"\xdd\xff\xff\xff\xff", 5})
        == "malformed msgpack: a header claims more than the 5 bytes hold");
  CHECK(unpack_failure(std::string{"\xdf\xff\xff\xff\xff", 5}).find("malformed msgpack: a header") == 0);
  // A string or binary is never allocated before its bytes are there: plain truncation.
  CHECK(unpack_failure(std::string{"\xdb\xff\xff\xff\xff", 5}) == "malformed msgpack: truncated value");
  CHECK(unpack_failure(std::string{"\xc6\xff\xff\xff\xff", 5}) == "malformed msgpack: truncated value");
}

TEST_CASE("truncated, malformed and trailing input is an unpack_error") {
  CHECK(unpack_failure("") == "malformed msgpack: truncated value");
  CHECK(unpack_failure("\x92\x01") == "malformed msgpack: truncated value");
  CHECK(unpack_failure("\xc1").find("malformed msgpack: ") == 0);  // 0xc1 is never used
  CHECK(unpack_failure("\x01\x02") == "malformed msgpack: 1 trailing bytes after the value");
}

TEST_CASE("the offset form stops after one value and leaves the rest to the caller") {
  std::string two{"\x92\x01\x02\xa1x", 5};
  std::size_t offset = 0;
  auto first = unpack_bounded(two.data(), two.size(), offset);
  CHECK(offset == 3);
  CHECK(first.get().via.array.size == 2);
  auto second = unpack_bounded(two.data(), two.size(), offset);
  CHECK(offset == 5);
  CHECK(second.get().as<std::string>() == "x");
}
