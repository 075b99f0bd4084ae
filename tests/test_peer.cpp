// Messages between processes: every built-in type, user structs, actor references handed
// from process to process, size limits, and a peer that breaks the protocol (blocking
// requests and how they end: test_requests.cpp).
#include "mproc/runtime/internal/peer.hpp"
#include "mproc/runtime/internal/proxy.hpp"

#include <unistd.h>

#include <cstdlib>
#include <string>

#include <caf/event_based_actor.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/stateful_actor.hpp>

#include <catch2/catch.hpp>

#include "mproc/runtime/actor_registry.hpp"
#include "mproc/runtime/message_types.hpp"
#include "mproc/runtime/node.hpp"
#include "support.hpp"

using namespace std::chrono_literals;
using mproc::errc;

namespace {

struct point {
  std::int32_t x = 0;
  std::int32_t y = 0;
  bool operator==(const point&) const = default;
  MSGPACK_DEFINE(x, y);
};

struct polygon {
  std::string name;
  std::vector<point> corners;
  std::optional<std::map<std::string, double>> meta;
  bool operator==(const polygon&) const = default;
  MSGPACK_DEFINE(name, corners, meta);
};

// Local-only: CAF may carry it, but nobody registered it for the wire.
struct secret {
  int code = 0;
};

} // namespace

MPROC_MESSAGE(point);
MPROC_MESSAGE(polygon);
MPROC_MESSAGE(std::vector<polygon>);
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(secret)

namespace {

// Replies with whatever it receives.
caf::behavior echo(caf::event_based_actor* self) {
  self->set_default_handler([](caf::scheduled_actor*, caf::message_view& x) -> caf::result<caf::message> {
    return x.move_content_to_message();
  });
  return {[](caf::error& e) -> caf::error { return e; }};
}

// Asks `target` for x + 1 on behalf of whoever asks it.
caf::behavior caller(caf::event_based_actor* self, caf::actor target) {
  return {[=](std::int32_t x) {
    auto rp = self->make_response_promise<std::int32_t>();
    self->request(target, 5s, x).then([rp](std::int32_t y) mutable { rp.deliver(y + 1); },
                                      [rp](caf::error& e) mutable { rp.deliver(std::move(e)); });
    return rp;
  }};
}

struct late_caller_state {
  caf::actor target;
};

// Like caller, but learns its target from a message.
caf::behavior late_caller(caf::stateful_actor<late_caller_state>* self) {
  return {
    [=](const caf::actor& target) { self->state.target = target; },
    [=](std::int32_t x) {
      auto rp = self->make_response_promise<std::int32_t>();
      self->request(self->state.target, 5s, x)
        .then([rp](std::int32_t y) mutable { rp.deliver(y + 1); },
              [rp](caf::error& e) mutable { rp.deliver(std::move(e)); });
      return rp;
    },
  };
}

caf::behavior adder(caf::event_based_actor*) {
  return {[](std::int32_t x) { return x + 100; }};
}

struct introducer_state {
  caf::actor helper;
};

// Answers with a reference to a helper actor of its own process (kept alive by its state).
caf::behavior introducer(caf::stateful_actor<introducer_state>* self) {
  self->state.helper = mproc::this_node().spawn("adder");
  return {[=](caf::get_atom) { return self->state.helper; }};
}

// Asks its keeper to let it go at its first message.
caf::behavior mortal(caf::event_based_actor* self, caf::actor keeper) {
  return {[=](std::int32_t) { self->send(keeper, std::string{"forget me"}); }};
}

struct keeper_state {
  caf::actor kept;
  caf::actor watcher;
};

// Keeps a mortal alive until it asks to be let go, and tells the watcher when it ends: an
// actor nobody references any more ends as unreachable.
caf::behavior keeper(caf::stateful_actor<keeper_state>* self) {
  self->set_down_handler([=](caf::down_msg& down) {
    self->send(self->state.watcher, caf::to_string(down.reason));
  });
  return {
    [=](caf::get_atom, caf::actor watcher) {
      self->state.watcher = std::move(watcher);
      self->state.kept = self->spawn(mortal, caf::actor_cast<caf::actor>(self));
      self->monitor(self->state.kept);
      return self->state.kept;
    },
    [=](const std::string&) { self->state.kept = nullptr; },  // "forget me"
  };
}

template <class T>
T round_trip(mproc::node& node, const caf::actor& echo_actor, const T& value) {
  auto reply = node.request_message(echo_actor, caf::make_message(value), 5s);
  REQUIRE(reply.template match_elements<T>());
  return reply.template get_as<T>(0);
}

} // namespace

MPROC_ACTOR(echo);
MPROC_ACTOR(caller);
MPROC_ACTOR(adder);
MPROC_ACTOR(introducer);
MPROC_ACTOR(late_caller);
MPROC_ACTOR(keeper);

TEST_CASE("every built-in type crosses to a child and back unchanged") {
  test::scoped_node node;
  auto p = node->spawn_process("echo", {});
  auto e = p.actor();
  auto& n = *node;
  CHECK(round_trip(n, e, true));
  CHECK(round_trip(n, e, std::int8_t{-8}) == -8);
  CHECK(round_trip(n, e, std::int16_t{-1600}) == -1600);
  CHECK(round_trip(n, e, std::int32_t{-320000}) == -320000);
  CHECK(round_trip(n, e, std::int64_t{-6400000000}) == -6400000000);
  CHECK(round_trip(n, e, std::uint8_t{250}) == 250);
  CHECK(round_trip(n, e, std::uint16_t{65000}) == 65000);
  CHECK(round_trip(n, e, std::uint32_t{4000000000u}) == 4000000000u);
  CHECK(round_trip(n, e, std::uint64_t{18000000000000000000ull}) == 18000000000000000000ull);
  CHECK(round_trip(n, e, 1.25f) == 1.25f);
  CHECK(round_trip(n, e, -2.5) == -2.5);
  CHECK(round_trip(n, e, std::string{"naïve\0bytes", 12}) == std::string{"naïve\0bytes", 12});
  CHECK(round_trip(n, e, mproc::bytes{'\0', '\x7f', '\xff'}) == mproc::bytes{'\0', '\x7f', '\xff'});
  CHECK(round_trip(n, e, caf::atom("hello")) == caf::atom("hello"));
  CHECK(round_trip(n, e, std::vector<std::int32_t>{1, 2, 3}) == std::vector<std::int32_t>{1, 2, 3});
  CHECK(round_trip(n, e, std::vector<std::string>{"a", ""}) == std::vector<std::string>{"a", ""});
  CHECK(round_trip(n, e, std::vector<double>{}).empty());
  std::map<std::string, std::int64_t> m{{"a", 1}, {"b", -2}};
  CHECK(round_trip(n, e, m) == m);
  auto multi = n.request_message(e, caf::make_message(std::int32_t{1}, std::string{"two"}, 3.0), 5s);
  REQUIRE(multi.match_elements<std::int32_t, std::string, double>());
  CHECK(multi.get_as<std::string>(1) == "two");
  p.terminate();
  CHECK(p.join(5s));
}

TEST_CASE("a nested user struct crosses to a child and back") {
  test::scoped_node node;
  auto p = node->spawn_process("echo", {});
  polygon square{"square", {{0, 0}, {0, 1}, {1, 1}, {1, 0}}, std::map<std::string, double>{{"area", 1.0}}};
  CHECK(round_trip(*node, p.actor(), square) == square);
  std::vector<polygon> many{square, polygon{"empty", {}, std::nullopt}};
  CHECK(round_trip(*node, p.actor(), many) == many);
  p.terminate();
  CHECK(p.join(5s));
}

TEST_CASE("a message with an unregistered type fails the request, saying how to fix it") {
  test::scoped_node node;
  auto p = node->spawn_process("echo", {});
  auto e = test::error_of([&] {
    node->request_message(p.actor(), caf::make_message(secret{7}), 5s);
  });
  CHECK(e.code() == errc::unknown_message_type);
  CHECK_THAT(e.what(), Catch::Contains("secret") && Catch::Contains("MPROC_MESSAGE"));
  CHECK(round_trip(*node, p.actor(), std::int32_t{1}) == 1);  // the link is fine
  p.terminate();
  CHECK(p.join(5s));
}

TEST_CASE("a child calls back an actor of its parent that was passed at spawn") {
  test::scoped_node node;
  auto local_adder = node->spawn("adder");
  auto p = node->spawn_process("caller", {}, local_adder);
  CHECK(node->request<std::int32_t>(p.actor(), 5s, std::int32_t{1}) == 102);
  p.terminate();
  CHECK(p.join(5s));
  caf::anon_send_exit(local_adder, caf::exit_reason::user_shutdown);
}

TEST_CASE("an actor handed from one child to another is reached through the parent") {
  test::scoped_node node;
  auto a = node->spawn_process("adder", {});
  auto b = node->spawn_process("caller", {}, a.actor());
  CHECK(node->request<std::int32_t>(b.actor(), 5s, std::int32_t{1}) == 102);
  a.kill();
  REQUIRE(a.join(5s));
  // b's proxy chain to a is broken now; b's request fails with a's exit status.
  auto e = test::error_of([&] { node->request<std::int32_t>(b.actor(), 5s, std::int32_t{1}); });
  CHECK(mproc::exit_code_of(e.reason()) == -9);
  b.terminate();
  CHECK(b.join(5s));
}

TEST_CASE("a reference relayed through the parent stays reachable when the parent drops it") {
  test::scoped_node node;
  auto a = node->spawn_process("introducer", {});
  auto b = node->spawn_process("late_caller", {});
  {
    auto helper = node->request<caf::actor>(a.actor(), 5s, caf::get_atom::value);
    caf::anon_send(b.actor(), helper);
  }  // the root no longer holds its proxy of a's helper; only b's reference names it
  CHECK(node->request<std::int32_t>(b.actor(), 5s, std::int32_t{1}) == 102);
  a.terminate();
  b.terminate();
  CHECK(a.join(5s));
  CHECK(b.join(5s));
}

TEST_CASE("a monitored remote actor reports its end even after every local handle is gone") {
  test::scoped_node node;
  auto a = node->spawn_process("introducer", {});
  caf::scoped_actor self{node->system()};
  {
    auto helper = node->request<caf::actor>(a.actor(), 5s, caf::get_atom::value);
    self->monitor(helper);
  }  // only the monitor refers to the proxy now
  a.kill();
  caf::error reason;
  self->receive([&](caf::down_msg& down) { reason = down.reason; },
                caf::after(5s) >> [] { FAIL("no down message"); });
  CHECK(mproc::exit_code_of(reason) == -9);
  CHECK(a.join(5s));
}

// Both ends remember the last sender and target of a stream of messages (to skip a lookup
// per message): senders and targets that change at every message must each still be found.
TEST_CASE("messages whose sender and target change every time each reach their own") {
  test::scoped_node node;
  auto p = node->spawn_process("introducer", {});
  auto helper = node->request<caf::actor>(p.actor(), 5s, caf::get_atom::value);
  caf::scoped_actor a{node->system()};
  caf::scoped_actor b{node->system()};
  auto fail = [](caf::error& e) { FAIL("no reply: " << caf::to_string(e)); };
  for (std::int32_t i = 0; i < 50; ++i) {
    a->request(helper, 5s, i).receive([&](std::int32_t y) { CHECK(y == i + 100); }, fail);
    b->request(p.actor(), 5s, caf::get_atom::value)
      .receive([&](const caf::actor& h) { CHECK(h == helper); }, fail);
    CHECK(node->request<std::int32_t>(helper, 5s, -i) == 100 - i);
    b->request(helper, 5s, 2 * i).receive([&](std::int32_t y) { CHECK(y == 2 * i + 100); }, fail);
    a->request(p.actor(), 5s, caf::get_atom::value)
      .receive([&](const caf::actor& h) { CHECK(h == helper); }, fail);
  }
  p.terminate();
  CHECK(p.join(5s));
}

// A peer remembers the last target of its frames; that memory must not keep the actor alive:
// it lets go once the frames of a read are handled, not when a later frame names another.
TEST_CASE("an actor that the last frames reached is destroyed once nobody else keeps it") {
  test::scoped_node node;
  auto p = node->spawn_process("keeper", {});
  caf::scoped_actor watcher{node->system()};
  auto mortal = node->request<caf::actor>(p.actor(), 5s, caf::get_atom::value,
                                          caf::actor_cast<caf::actor>(watcher));
  caf::anon_send(mortal, std::int32_t{1});  // the last frame to this process for a while
  std::string reason;
  watcher->receive([&](const std::string& r) { reason = r; },
                   caf::after(10s) >> [] { FAIL("the mortal is still alive"); });
  CHECK_THAT(reason, Catch::Contains("unreachable"));
  p.terminate();
  CHECK(p.join(5s));
}

TEST_CASE("a reply larger than the receiver's maximum frame comes back as an error") {
  test::scoped_node node{{.max_frame = 1u << 20}};
  auto p = node->spawn_process("echo", {});
  mproc::bytes big(2u << 20, 'x');
  auto e = test::error_of([&] { node->request_message(p.actor(), caf::make_message(big), 5s); });
  CHECK(e.code() == errc::frame_too_large);
  CHECK_THAT(e.what(), Catch::Contains("node_options::max_frame"));
  CHECK(round_trip(*node, p.actor(), std::int32_t{5}) == 5);
  p.terminate();
  CHECK(p.join(5s));
}

TEST_CASE("large payloads, sent from where they lie, cross both ways intact") {
  test::scoped_node node;
  auto p = node->spawn_process("echo", {});
  mproc::bytes big(5u << 20);  // above the huge-page size on receipt, too
  for (std::size_t i = 0; i < big.size(); ++i)
    big[i] = static_cast<char>(i * 31 + i / 4096);
  std::string text(300'000, 't');
  text[299'999] = '!';
  std::vector<mproc::bytes> many(3, mproc::bytes(100'000, 'm'));
  auto reply = node->request_message(p.actor(), caf::make_message(big, text, many, std::int32_t{7}), 10s);
  REQUIRE(reply.match_elements<mproc::bytes, std::string, std::vector<mproc::bytes>, std::int32_t>());
  CHECK(reply.get_as<mproc::bytes>(0) == big);
  CHECK(reply.get_as<std::string>(1) == text);
  CHECK(reply.get_as<std::vector<mproc::bytes>>(2) == many);
  CHECK(reply.get_as<std::int32_t>(3) == 7);
  // As an argument the caller keeps: the message's own copy (made in huge pages) crosses.
  CHECK(node->request<mproc::bytes>(p.actor(), 10s, big) == big);
  CHECK(round_trip(*node, p.actor(), std::int32_t{5}) == 5);
  p.terminate();
  CHECK(p.join(5s));
}

namespace {

// Starts a child that breaks the protocol as `mode` asks (tests/main_node.cpp): its start
// must fail with an error saying `why`; then a well-behaved child still starts and answers.
void misbehaving_child_is_cut_off(mproc::node& node, const char* mode, const char* why) {
  ::setenv(mode, "1", 1);
  // Exec: the misbehaving happens in the test binary's main(), which a fork skips.
  mproc::process evil{node, "echo", {.start_method = mproc::start_method::exec}};
  CHECK_THROWS_WITH(evil.start(), Catch::Contains(why));
  ::unsetenv(mode);
  CHECK(evil.join(5s));
  auto good = node.spawn_process("echo", {});
  CHECK(round_trip(node, good.actor(), std::int32_t{9}) == 9);
  good.terminate();
  CHECK(good.join(5s));
}

} // namespace

TEST_CASE("a child whose hello announces a maximum frame below 1 MiB is cut off, saying so") {
  test::scoped_node node;
  misbehaving_child_is_cut_off(*node, "MPROC_TEST_CHILD_TINY_MAX_FRAME",
                               "maximum frame of 16 bytes");
}

TEST_CASE("a child that writes garbage is cut off; the node keeps working") {
  test::scoped_node node;
  misbehaving_child_is_cut_off(*node, "MPROC_TEST_CHILD_WRITES_GARBAGE", "cannot start process");
}
