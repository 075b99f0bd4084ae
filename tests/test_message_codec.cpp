// caf::message <-> wire messages, without processes.
#include "mproc/runtime/internal/message_codec.hpp"

#include <cmath>
#include <random>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/send.hpp>

#include <catch2/catch.hpp>

#include "mproc/runtime/errors.hpp"
#include "mproc/runtime/message_bytes.hpp"
#include "mproc/runtime/message_types.hpp"

using namespace mproc;

namespace {

struct reading {
  std::string sensor;
  std::vector<double> values;
  MSGPACK_DEFINE(sensor, values);
};

struct unregistered {
  int x = 0;
};

} // namespace

MPROC_MESSAGE(reading);
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(unregistered)

namespace {

struct registry_ready {
  registry_ready() { detail::register_builtin_types(); }
} ready;

std::string encode(const caf::message& msg) {
  wire::buffer buf;
  wire::packer pk{buf};
  wire::codec_state st;
  REQUIRE(detail::encode_message(pk, msg, st));
  return {buf.data(), buf.size()};
}

caf::message decode(const std::string& bytes, detail::decode_status expected = detail::decode_status::ok) {
  auto h = msgpack::unpack(bytes.data(), bytes.size());
  caf::message out;
  wire::codec_state st;
  CHECK(detail::decode_message(h.get(), out, st) == expected);
  return out;
}

template <class... Ts>
std::string packed(const Ts&... xs) {
  wire::buffer buf;
  msgpack::pack(buf, std::make_tuple(xs...));
  return {buf.data(), buf.size()};
}

} // namespace

TEST_CASE("a message of built-ins round-trips with its element types") {
  auto msg = caf::make_message(std::int32_t{1}, std::string{"two"}, 3.5, true, caf::atom("four"),
                               std::vector<std::int64_t>{5, 6}, bytes{'7'}, std::uint8_t{8});
  auto back = decode(encode(msg));
  REQUIRE(back.match_elements<std::int32_t, std::string, double, bool, caf::atom_value,
                              std::vector<std::int64_t>, bytes, std::uint8_t>());
  CHECK(back.get_as<std::string>(1) == "two");
  CHECK(back.get_as<caf::atom_value>(4) == caf::atom("four"));
  CHECK(back.get_as<std::vector<std::int64_t>>(5) == std::vector<std::int64_t>{5, 6});
}

TEST_CASE("the wire form is tag, value pairs a client in another language can write") {
  CHECK(encode(caf::make_message(std::int32_t{7}, std::string{"x"})) == packed("i32", 7, "str", "x"));
  auto msg = decode(packed("u16", 9, "atom", "ping"));
  REQUIRE(msg.match_elements<std::uint16_t, caf::atom_value>());
  CHECK(msg.get_as<caf::atom_value>(1) == caf::atom("ping"));
}

TEST_CASE("a registered user struct round-trips under its name") {
  auto bytes_ = encode(caf::make_message(reading{"t1", {1.5, 2.5}}));
  CHECK(bytes_ == packed("reading", std::make_tuple("t1", std::vector<double>{1.5, 2.5})));
  auto back = decode(bytes_);
  REQUIRE(back.match_elements<reading>());
  CHECK(back.get_as<reading>(0).values.size() == 2);
}

TEST_CASE("an unregistered type cannot be encoded, and the error says what to do") {
  wire::buffer buf;
  wire::packer pk{buf};
  wire::codec_state st;
  CHECK_FALSE(detail::encode_message(pk, caf::make_message(std::int32_t{1}, unregistered{}), st));
  CHECK_THAT(st.error, Catch::Contains("element 1") && Catch::Contains("unregistered")
                         && Catch::Contains("MPROC_MESSAGE"));
}

TEST_CASE("an unknown tag is reported as such, a bad value as a bad value") {
  auto unknown = msgpack::unpack(packed("no_such_type", 1).data(), packed("no_such_type", 1).size());
  caf::message out;
  wire::codec_state st;
  CHECK(detail::decode_message(unknown.get(), out, st) == detail::decode_status::unknown_type);
  CHECK_THAT(st.error, Catch::Contains("'no_such_type'"));
  wire::codec_state st2;
  auto bad = packed("i8", 300);
  auto h = msgpack::unpack(bad.data(), bad.size());
  CHECK(detail::decode_message(h.get(), out, st2) == detail::decode_status::bad_value);
  CHECK(st2.error == "element 0 (i8): 300 does not fit in i8");
  decode(packed("i32"), detail::decode_status::bad_value);  // odd length
  decode(packed(7, 7), detail::decode_status::bad_value);   // tag not a string
}

TEST_CASE("a message decoded for a mailbox holds the same elements, one or several, and fails as a message does") {
  auto element_of = [](const std::string& bytes, detail::decode_status expected) {
    auto h = msgpack::unpack(bytes.data(), bytes.size());
    caf::mailbox_element_ptr out;
    wire::codec_state st;
    CHECK(detail::decode_element(h.get(), out, st) == expected);
    return out;
  };
  auto one = element_of(packed("reading", std::make_tuple("t1", std::vector<double>{1.5})),
                        detail::decode_status::ok);
  REQUIRE(one);
  CHECK(one->sender == nullptr);
  CHECK(one->mid == caf::make_message_id());
  REQUIRE(one->content().match_elements<reading>());
  CHECK(one->content().get_as<reading>(0).sensor == "t1");
  auto copied = one->copy_content_to_message();  // what CAF does to stash or forward it
  auto moved = one->move_content_to_message();
  REQUIRE(copied.match_elements<reading>());
  REQUIRE(moved.match_elements<reading>());
  CHECK(copied.get_as<reading>(0).values == std::vector<double>{1.5});
  CHECK(moved.get_as<reading>(0).sensor == "t1");
  auto two = element_of(packed("i32", 7, "str", "x"), detail::decode_status::ok);
  REQUIRE(two);
  auto msg = two->move_content_to_message();
  REQUIRE(msg.match_elements<std::int32_t, std::string>());
  CHECK(msg.get_as<std::string>(1) == "x");
  CHECK_FALSE(element_of(packed("no_such_type", 1), detail::decode_status::unknown_type));
  CHECK_FALSE(element_of(packed("i8", 300), detail::decode_status::bad_value));
  CHECK_FALSE(element_of(packed("i32"), detail::decode_status::bad_value));
}

TEST_CASE("actor references need a node to cross") {
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  auto a = sys.spawn([]() -> caf::behavior { return {[](std::int32_t) {}}; });
  wire::buffer buf;
  wire::packer pk{buf};
  wire::codec_state st;
  CHECK_FALSE(detail::encode_message(pk, caf::make_message(a), st));
  CHECK_THAT(st.error, Catch::Contains("through a node"));
  caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
}

TEST_CASE("errors cross with category, code and context") {
  auto original = make_error(errc::bad_arguments, "why not");
  wire::buffer buf;
  wire::packer pk{buf};
  wire::codec_state st;
  detail::encode_error(pk, original, st);
  auto h = msgpack::unpack(buf.data(), buf.size());
  wire::error_view view;
  std::string why;
  REQUIRE(wire::decode_error(h.get(), view, why));
  CHECK(view.category == "mproc");
  auto back = detail::decode_error(view, st);
  CHECK(code_of(back) == errc::bad_arguments);
  CHECK(back.context().get_as<std::string>(0) == "why not");
}

TEST_CASE("an error whose code does not fit CAF's 8 bits stays an error: protocol_error") {
  wire::codec_state st;
  for (std::uint32_t code : {256u, 257u, 70000u}) {
    wire::error_view view{"system", code, "from another language", {}};
    auto back = detail::decode_error(view, st);
    CHECK(static_cast<bool>(back));  // not "no error": a failed answer stays a failure
    CHECK(code_of(back) == errc::protocol_error);
    CHECK_THAT(to_string(back), Catch::Contains(std::to_string(code)));
  }
  wire::error_view fits{"system", 255, "", {}};
  CHECK(detail::decode_error(fits, st).code() == 255);
  wire::error_view empty{"", 0, "", {}};  // CAF's empty error, as a handler may answer it
  CHECK_FALSE(detail::decode_error(empty, st));
}

TEST_CASE("100,000 random msgpack messages decode to a message or an error, never a crash") {
  std::mt19937_64 rng{7};
  const char* tags[] = {"i32", "str", "vec<i32>", "reading", "map<str,str>", "bool", "f64",
                        "atom", "bytes", "error", "exit", "opt<str>", "junk"};
  int ok = 0;
  for (int i = 0; i < 100000; ++i) {
    wire::buffer buf;
    wire::packer pk{buf};
    int n = static_cast<int>(rng() % 3);
    pk.pack_array(2 * n);
    for (int k = 0; k < n; ++k) {
      pk.pack(std::string{tags[rng() % std::size(tags)]});
      switch (rng() % 6) {
        case 0: pk.pack(static_cast<std::int64_t>(rng())); break;
        case 1: pk.pack(std::string(rng() % 5, 'z')); break;
        case 2: pk.pack(std::vector<std::int32_t>(rng() % 4, 1)); break;
        case 3: pk.pack(std::make_tuple("s", std::vector<double>{1.0})); break;
        case 4: pk.pack_nil(); break;
        default: pk.pack(std::map<std::string, std::string>{{"k", "v"}});
      }
    }
    auto h = msgpack::unpack(buf.data(), buf.size());
    caf::message out;
    wire::codec_state st;
    if (detail::decode_message(h.get(), out, st) == detail::decode_status::ok)
      ++ok;
    else
      CHECK_FALSE(st.error.empty());
  }
  CHECK(ok > 0);
}

namespace {

// ["error", [category, code, text, <context>]] with the context itself such a message, `depth`
// times around a nil: every level is a recursion of the error codec, 12 bytes each.
bytes nested_errors(std::size_t depth) {
  const std::string level{"\x92\xa5" "error" "\x94\xa1m\x01\xa0", 12};
  std::string out;
  for (std::size_t i = 0; i < depth; ++i)
    out += level;
  out += '\xc0';
  return bytes(out.begin(), out.end());
}

errc from_bytes_failure(const bytes& data, std::string& what) {
  try {
    from_bytes(data);
  } catch (const mproc::error& e) {
    what = e.what();
    return e.code();
  }
  return errc::none;
}

} // namespace

TEST_CASE("from_bytes round-trips a message, floats exactly") {
  auto back = from_bytes(to_bytes(caf::make_message(-0.0, 18446744073709551616.0, 2.0f)));
  REQUIRE(back.match_elements<double, double, float>());
  CHECK(std::signbit(back.get_as<double>(0)));
  CHECK(back.get_as<double>(1) == 18446744073709551616.0);
  CHECK(back.get_as<float>(2) == 2.0f);
}

TEST_CASE("from_bytes decodes errors nested in error contexts, within the nesting limit") {
  auto msg = from_bytes(nested_errors(20));
  REQUIRE(msg.match_elements<caf::error>());
  std::size_t depth = 0;
  for (const auto* e = &msg.get_as<caf::error>(0); e->context().match_elements<caf::error>();
       e = &e->context().get_as<caf::error>(0))
    ++depth;
  CHECK(depth == 19);
}

TEST_CASE("from_bytes refuses 50,000 nested error contexts with bad_message, not a stack overflow") {
  std::string what;
  CHECK(from_bytes_failure(nested_errors(50000), what) == errc::bad_message);
  CHECK_THAT(what, Catch::Contains("nested deeper than 64 levels"));
}

TEST_CASE("from_bytes refuses a 50,000-deep array and trailing bytes with bad_message") {
  bytes deep(50000, '\x91');
  deep.push_back('\xc0');
  std::string what;
  CHECK(from_bytes_failure(deep, what) == errc::bad_message);
  CHECK(what == "not a message: malformed msgpack: nested deeper than 64 levels");
  auto two = to_bytes(caf::make_message(std::int32_t{1}));
  two.push_back('\xc0');
  CHECK(from_bytes_failure(two, what) == errc::bad_message);
  CHECK_THAT(what, Catch::Contains("1 trailing bytes"));
}
