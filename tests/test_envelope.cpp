#include "mproc/serialization/envelope.hpp"

#include <random>

#include <catch2/catch.hpp>

#include "mproc/serialization/frame.hpp"
#include "same_object.hpp"

using namespace mproc::wire;

namespace {

// Packs one envelope with `pack` and returns its payload (the frame minus the prefix).
template <class Pack>
std::string payload_of(Pack pack) {
  buffer buf;
  auto start = begin_frame(buf);
  pack(buf);
  auto n = end_frame(buf, start);
  REQUIRE(n == buf.size() - frame_header_size);
  return std::string{buf.data() + frame_header_size, n};
}

template <class Env>
Env decode_as(const std::string& payload, decoded_envelope& d) {
  std::string error;
  INFO(error);
  REQUIRE(decode_envelope(payload, d, error));
  REQUIRE(std::holds_alternative<Env>(d.env));
  return std::get<Env>(d.env);
}

std::string decode_failure(const std::string& payload) {
  decoded_envelope d;
  std::string error;
  CHECK_FALSE(decode_envelope(payload, d, error));
  CHECK_FALSE(error.empty());
  return error;
}

void pack_message(buffer& buf) {
  packer pk{buf};
  pk.pack_array(2);
  pk.pack(std::string{"i32"});
  pk.pack(7);
}

std::string packed(std::initializer_list<std::int32_t> xs) {
  buffer b;
  msgpack::pack(b, std::vector<std::int32_t>(xs));
  return {b.data(), b.size()};
}

// Both ways of decoding `payload` — the owning one, and the peers' zone with its short cut
// for send and request heads — accept the same frames with the same fields, and refuse the
// same ones with the same error. Returns whether they accepted it.
bool both_ways_agree(const std::string& payload) {
  decoded_envelope whole;
  std::string whole_error;
  bool whole_ok = decode_envelope(payload, whole, whole_error);
  static msgpack::zone zone;
  envelope in_zone;
  std::string zone_error;
  bool zone_ok = decode_envelope(payload, zone, in_zone, zone_error);
  INFO(whole_error << " / " << zone_error);
  REQUIRE(whole_ok == zone_ok);
  if (!whole_ok) {
    CHECK(whole_error == zone_error);
    return false;
  }
  REQUIRE(whole.env.index() == in_zone.index());
  auto same = [](const auto& a, const auto& b) {
    CHECK(a.to.node == b.to.node);
    CHECK(a.to.actor == b.to.actor);
    CHECK(a.from.node == b.from.node);
    CHECK(a.from.actor == b.from.actor);
    CHECK(mproc::testing::same_object(a.message, b.message));
  };
  if (const auto* s = std::get_if<send_env>(&whole.env)) {
    same(*s, std::get<send_env>(in_zone));
  } else if (const auto* r = std::get_if<request_env>(&whole.env)) {
    same(*r, std::get<request_env>(in_zone));
    CHECK(r->request == std::get<request_env>(in_zone).request);
  }
  return true;
}

// A send frame whose message is `[tag, value]` with the value `levels` arrays deep.
std::string send_nested(std::uint32_t levels) {
  return payload_of([&](buffer& b) {
    pack_send_head(b, {1, 2}, {3, 4});
    packer pk{b};
    pk.pack_array(2);
    pk.pack(std::string{"value"});
    for (std::uint32_t i = 0; i < levels; ++i)
      pk.pack_array(1);
    pk.pack_nil();
  });
}

} // namespace

TEST_CASE("hello round-trips") {
  decoded_envelope d;
  auto e = decode_as<hello_env>(payload_of([](buffer& b) { pack_hello(b, 42, 1234, "main", 1000); }), d);
  CHECK(e.version == protocol_version);
  CHECK(e.node == 42);
  CHECK(e.pid == 1234);
  CHECK(e.name == "main");
  CHECK(e.max_frame == 1000);
}

TEST_CASE("spawn and spawned round-trip") {
  decoded_envelope d;
  auto args = packed({1, 2});
  auto s = decode_as<spawn_env>(payload_of([&](buffer& b) {
    pack_spawn_head(b, 9, "worker", true);
    b.write(args.data(), args.size());
  }), d);
  CHECK(s.request == 9);
  CHECK(s.actor == "worker");
  CHECK(s.args.via.array.size == 2);
  CHECK(s.main);

  decoded_envelope d2;
  auto ok = decode_as<spawned_env>(payload_of([](buffer& b) { pack_spawned(b, 9, {5, 6}); }), d2);
  CHECK(ok.ok);
  CHECK(ok.actor.node == 5);
  CHECK(ok.actor.actor == 6);

  decoded_envelope d3;
  auto failed = decode_as<spawned_env>(payload_of([](buffer& b) {
    pack_spawn_failed_head(b, 9);
    pack_error_head(b, "mproc", 3, "no actor named 'x'");
    packer{b}.pack_nil();
  }), d3);
  CHECK_FALSE(failed.ok);
  CHECK(failed.error.category == "mproc");
  CHECK(failed.error.code == 3);
  CHECK(failed.error.text == "no actor named 'x'");
}

TEST_CASE("send, request and response round-trip") {
  decoded_envelope d;
  auto s = decode_as<send_env>(payload_of([](buffer& b) {
    pack_send_head(b, {1, 2}, {3, 4});
    pack_message(b);
  }), d);
  CHECK(s.to.node == 1);
  CHECK(s.to.actor == 2);
  CHECK(s.from.node == 3);
  CHECK(s.from.actor == 4);
  CHECK(s.message.via.array.size == 2);

  decoded_envelope d2;
  auto r = decode_as<request_env>(payload_of([](buffer& b) {
    pack_request_head(b, {1, 2}, {}, 77);
    pack_message(b);
  }), d2);
  CHECK(r.request == 77);
  CHECK(r.from.empty());

  decoded_envelope d3;
  auto ok = decode_as<response_env>(payload_of([](buffer& b) {
    pack_response_head(b, {1, 2}, {3, 4}, 77, true);
    pack_message(b);
  }), d3);
  CHECK(ok.ok);
  CHECK(ok.request == 77);

  decoded_envelope d4;
  auto err = decode_as<response_env>(payload_of([](buffer& b) {
    pack_response_head(b, {1, 2}, {3, 4}, 77, false);
    pack_error_head(b, "system", 6, "request timed out");
    packer{b}.pack_nil();
  }), d4);
  CHECK_FALSE(err.ok);
  CHECK(err.error.text == "request timed out");
}

TEST_CASE("monitor, down, heartbeat and shutdown round-trip") {
  decoded_envelope d;
  auto m = decode_as<monitor_env>(payload_of([](buffer& b) { pack_monitor(b, {8, 9}); }), d);
  CHECK(m.actor.actor == 9);

  decoded_envelope d2;
  auto normal = decode_as<down_env>(payload_of([](buffer& b) {
    pack_down_head(b, {8, 9});
    packer{b}.pack_nil();
  }), d2);
  CHECK_FALSE(normal.reason);

  decoded_envelope d3;
  auto killed = decode_as<down_env>(payload_of([](buffer& b) {
    pack_down_head(b, {8, 9});
    pack_error_head(b, "mproc", 1, "process killed by SIGKILL");
    pack_message(b);
  }), d3);
  REQUIRE(killed.reason);
  CHECK(killed.reason->context.type == msgpack::type::ARRAY);

  decoded_envelope d4;
  decode_as<heartbeat_env>(payload_of([](buffer& b) { pack_heartbeat(b); }), d4);
  decoded_envelope d5;
  CHECK(decode_as<shutdown_env>(payload_of([](buffer& b) { pack_shutdown(b, "bye"); }), d5).reason
        == "bye");
}

TEST_CASE("lookup and found round-trip") {
  decoded_envelope d;
  auto l = decode_as<lookup_env>(payload_of([](buffer& b) { pack_lookup(b, 4, "jobs"); }), d);
  CHECK(l.request == 4);
  CHECK(l.name == "jobs");
  decoded_envelope d2;
  auto f = decode_as<found_env>(payload_of([](buffer& b) { pack_found(b, 4, {7, 8}); }), d2);
  CHECK(f.ok);
  CHECK(f.actor.actor == 8);
  decoded_envelope d3;
  auto nf = decode_as<found_env>(payload_of([](buffer& b) {
    pack_not_found_head(b, 4);
    pack_error_head(b, "mproc", 8, "no actor registered as 'jobs'");
    packer{b}.pack_nil();
  }), d3);
  CHECK_FALSE(nf.ok);
  CHECK(nf.error.code == 8);
}

TEST_CASE("malformed envelopes are errors that say what is wrong") {
  auto pack = [](auto value) {
    buffer b;
    msgpack::pack(b, value);
    return std::string{b.data(), b.size()};
  };
  CHECK(decode_failure("") .find("malformed msgpack") == 0);
  CHECK(decode_failure(pack(7)) == "an envelope is a non-empty array, got uint");
  CHECK(decode_failure(pack(std::vector<int>{})) == "an envelope is a non-empty array, got array");
  CHECK(decode_failure(pack(std::make_tuple(99))) == "unknown envelope kind 99");
  CHECK(decode_failure(pack(std::make_tuple(3, 1, 2))) == "send envelope needs 6 fields, got 3");
  CHECK(decode_failure(pack(std::make_tuple(3, 1, 2, 3, "x", std::vector<int>{})))
        == "send.from: expected u64, got str");
  CHECK(decode_failure(pack(std::make_tuple(0, 1, 2, 3, "n", -5)))
        == "hello.max_frame: -5 does not fit in u32");
  CHECK(decode_failure(pack(7) + pack(8)) == "1 trailing bytes after the envelope");
}

TEST_CASE("an array header claiming four billion elements is refused without allocating them") {
  const std::string bomb{"\xdd\xff\xff\xff\xff", 5};
  CHECK(decode_failure(bomb).find("malformed msgpack") == 0);
}

TEST_CASE("100,000 random, truncated and mutated inputs give errors, never crashes") {
  std::mt19937_64 rng{20261123};
  std::vector<std::string> valid = {
    payload_of([](buffer& b) { pack_hello(b, 1, 2, "n", 3); }),
    payload_of([](buffer& b) { pack_send_head(b, {1, 2}, {3, 4}); pack_message(b); }),
    payload_of([](buffer& b) { pack_response_head(b, {1, 2}, {3, 4}, 5, false);
                               pack_error_head(b, "c", 1, "t"); packer{b}.pack_nil(); }),
    payload_of([](buffer& b) { pack_spawn_head(b, 1, "a", false); auto a = packed({1, 2, 3});
                               b.write(a.data(), a.size()); }),
  };
  std::size_t decoded = 0;
  std::size_t rejected = 0;
  for (int i = 0; i < 100000; ++i) {
    std::string input;
    auto base = valid[rng() % valid.size()];
    switch (i % 3) {
      case 0:  // random bytes
        input.resize(rng() % 64);
        for (auto& c : input)
          c = static_cast<char>(rng());
        break;
      case 1:  // truncated
        input = base.substr(0, rng() % base.size());
        break;
      default:  // a few flipped bytes
        input = base;
        for (int k = 0; k < 3; ++k)
          input[rng() % input.size()] = static_cast<char>(rng());
    }
    if (both_ways_agree(input))
      ++decoded;
    else
      ++rejected;
    // The frame decoder sees the same bytes as a stream and must not crash either.
    frame_decoder f{1024};
    f.feed(input.data(), input.size(), [](std::string_view) {});
  }
  CHECK(decoded + rejected == 100000);
  CHECK(rejected > 50000);
}

TEST_CASE("a send or request read head first decodes exactly as the whole envelope does") {
  auto raw = [](std::initializer_list<unsigned> bytes, const std::string& tail = {}) {
    std::string out;
    for (unsigned b : bytes)
      out.push_back(static_cast<char>(b));
    return out + tail;
  };
  std::string message = raw({0x92, 0xa3, 'i', '3', '2', 0x07});
  // Every unsigned width mproc packs, and the node ids it uses (64-bit).
  CHECK(both_ways_agree(payload_of([](buffer& b) {
    pack_send_head(b, {0x9a3b123456789abcull, 0x7f}, {0xff, 0x1234});
    pack_message(b);
  })));
  CHECK(both_ways_agree(payload_of([](buffer& b) {
    pack_request_head(b, {0x12345678, 1}, {}, 0x1000000000000000ull);
    pack_message(b);
  })));
  // A signed encoding of a non-negative id is legal msgpack, read the long way.
  CHECK(both_ways_agree(raw({0x96, 0x03, 0xd0, 0x01, 0x02, 0x03, 0x04}, message)));
  // Refused, each with the full decoder's words: a negative id, a short or long envelope,
  // a missing, truncated or non-array message, trailing bytes.
  CHECK_FALSE(both_ways_agree(raw({0x96, 0x03, 0xff, 0x02, 0x03, 0x04}, message)));
  CHECK_FALSE(both_ways_agree(raw({0x96, 0x03, 0xd0, 0xff, 0x02, 0x03, 0x04}, message)));
  CHECK_FALSE(both_ways_agree(raw({0x95, 0x03, 0x01, 0x02, 0x03, 0x04}, message)));
  CHECK_FALSE(both_ways_agree(raw({0x97, 0x03, 0x01, 0x02, 0x03, 0x04}, message + message)));
  CHECK_FALSE(both_ways_agree(raw({0x96, 0x03, 0x01, 0x02, 0x03, 0x04})));
  CHECK_FALSE(both_ways_agree(raw({0x96, 0x03, 0x01, 0x02, 0x03, 0x04}, message.substr(0, 4))));
  CHECK_FALSE(both_ways_agree(raw({0x96, 0x03, 0x01, 0x02, 0x03, 0x04, 0x07})));
  CHECK_FALSE(both_ways_agree(raw({0x96, 0x03, 0x01, 0x02, 0x03, 0x04}, message + "x")));
  CHECK_FALSE(both_ways_agree(raw({0x97, 0x04, 0x01, 0x02, 0x03, 0x04, 0xcc}, message)));
  // The nesting limit counts the envelope's own level, read apart or not.
  std::uint32_t deepest = 0;
  for (std::uint32_t levels = max_nesting - 4; levels <= max_nesting; ++levels)
    if (both_ways_agree(send_nested(levels)))
      deepest = levels;
  CHECK(deepest == max_nesting - 2);  // beside the envelope's array and the message's
}
