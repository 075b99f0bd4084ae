#include "mproc/serialization/type_registry.hpp"

#include <any>

#include <catch2/catch.hpp>

using namespace mproc::wire;

namespace {

// Stands in for the runtime's caf::message_builder.
struct any_sink {
  std::vector<std::any> values;
  template <class T>
  void append(T&& x) { values.emplace_back(std::forward<T>(x)); }
};

} // namespace

TEST_CASE("entries are found by type and by tag, and decode into the sink") {
  type_registry r;
  r.add(make_type_entry<std::int32_t, any_sink>());
  r.add(make_type_entry<std::vector<std::string>, any_sink>());
  REQUIRE(r.find(std::type_index{typeid(std::int32_t)}) != nullptr);
  const auto* e = r.find("vec<str>");
  REQUIRE(e != nullptr);
  CHECK(e->type == std::type_index{typeid(std::vector<std::string>)});
  CHECK(r.find("vec<i64>") == nullptr);

  buffer buf;
  packer pk{buf};
  codec_state st;
  std::vector<std::string> v{"a", "b"};
  e->encode(pk, &v, st);
  auto h = msgpack::unpack(buf.data(), buf.size());
  any_sink sink;
  REQUIRE(e->decode(h.get(), st, &sink));
  REQUIRE(sink.values.size() == 1);
  CHECK(std::any_cast<std::vector<std::string>>(sink.values[0]) == v);
}

TEST_CASE("adding a type twice is harmless") {
  type_registry r;
  r.add(make_type_entry<bool, any_sink>());
  r.add(make_type_entry<bool, any_sink>());
  CHECK(r.tags() == std::vector<std::string>{"bool"});
}

TEST_CASE("a tag taken by another type is refused") {
  type_registry r;
  r.add(make_type_entry<std::int32_t, any_sink>());
  auto clash = make_type_entry<std::int64_t, any_sink>();
  clash.name = "i32";
  CHECK_THROWS_WITH(r.add(clash), Catch::Contains("is used by both int and long"));
}

TEST_CASE("a frozen registry refuses new types") {
  type_registry r;
  r.freeze();
  CHECK_THROWS_WITH(r.add(make_type_entry<bool, any_sink>()), Catch::Contains("after a node started"));
}
