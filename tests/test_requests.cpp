// Blocking requests to another process, and how each can end: an error reply, a process
// that has ended, a timeout (and replies racing it), a reply of another type, and a
// blocking call made where it would deadlock the node.
#include "mproc/runtime/internal/peer.hpp"
#include "mproc/runtime/internal/proxy.hpp"

#include <atomic>
#include <chrono>
#include <future>
#include <string>
#include <thread>

#include <caf/event_based_actor.hpp>

#include <catch2/catch.hpp>

#include "mproc/runtime/actor_registry.hpp"
#include "mproc/runtime/inspect.hpp"
#include "mproc/runtime/node.hpp"
#include "support.hpp"

using namespace std::chrono_literals;
using mproc::errc;

namespace {

// Replies with the number it got.
caf::behavior echo(caf::event_based_actor*) {
  return {[](std::int32_t x) { return x; }};
}

// Answers with an mproc error.
caf::behavior refuser(caf::event_based_actor*) {
  return {[](std::int32_t) -> caf::result<std::int32_t> {
    return mproc::make_error(errc::bad_arguments, "no thanks");
  }};
}

// Never answers.
caf::behavior silent(caf::event_based_actor* self) {
  return {[=](std::int32_t) { return self->make_response_promise<std::int32_t>(); }};
}

// Replies with what it got, 2 ms later.
caf::behavior napper(caf::event_based_actor*) {
  return {[](std::int32_t x) {
    std::this_thread::sleep_for(2ms);
    return x;
  }};
}

// Takes the request and ends (stopped, not done) without answering it: CAF 0.17 drops its
// promise silently.
caf::behavior dropper(caf::event_based_actor* self) {
  return {[=](std::int32_t) {
    auto rp = self->make_response_promise<std::int32_t>();
    self->quit(caf::exit_reason::user_shutdown);
    return rp;
  }};
}

// Keeps every string it gets and answers each with all of them so far.
caf::behavior recorder(caf::event_based_actor*) {
  auto seen = std::make_shared<std::string>();
  return {[seen](const std::string& s) {
    *seen += s + ";";
    return *seen;
  }};
}

// A misbehaving process: asked something, it first sends `rec` a request as if `rec` itself
// had asked it (an id the root never used for it), then hands the question on to `rec`.
caf::behavior forger(caf::event_based_actor* self, caf::actor rec) {
  return {[=](const std::string& question) {
    auto as_if_local = caf::actor_cast<caf::strong_actor_ptr>(rec);
    rec->enqueue(caf::make_mailbox_element(as_if_local, caf::make_message_id(77), {},
                                           std::string{"forged"}),
                 self->context());
    return self->delegate(rec, question);
  }};
}

} // namespace

MPROC_ACTOR(echo);
MPROC_ACTOR(forger);
MPROC_ACTOR(refuser);
MPROC_ACTOR(silent);
MPROC_ACTOR(napper);

TEST_CASE("a blocking call on the I/O thread is refused instead of deadlocking the node") {
  test::scoped_node node;
  auto p = node->spawn_process("silent", {});
  std::promise<mproc::errc> refused;
  // A functor attached to a proxy runs where the proxy dies: on the node's I/O thread.
  p.actor()->attach_functor([&](const caf::error&) {
    try {
      mproc::this_node().spawn_process("silent", {});
      refused.set_value(errc::none);
    } catch (const mproc::error& e) {
      refused.set_value(e.code());
    }
  });
  p.kill();
  auto result = refused.get_future();
  REQUIRE(result.wait_for(5s) == std::future_status::ready);
  CHECK(result.get() == errc::spawn_failed);
  CHECK(p.join(5s));
}

TEST_CASE("an error reply keeps its category, code and text") {
  test::scoped_node node;
  auto p = node->spawn_process("refuser", {});
  auto e = test::error_of([&] { node->request<std::int32_t>(p.actor(), 5s, std::int32_t{1}); });
  CHECK(e.code() == errc::bad_arguments);
  CHECK_THAT(e.what(), Catch::Contains("no thanks"));
  p.terminate();
  CHECK(p.join(5s));
}

TEST_CASE("a request to a process that has ended fails at once with its exit status") {
  test::scoped_node node;
  auto p = node->spawn_process("silent", {});
  p.kill();
  REQUIRE(p.join(5s));
  auto start = std::chrono::steady_clock::now();
  auto e = test::error_of([&] { node->request<std::int32_t>(p.actor(), 5s, std::int32_t{1}); });
  CHECK(mproc::exit_code_of(e.reason()) == -9);
  CHECK(std::chrono::steady_clock::now() - start < 1s);
}

namespace {

// Whether this node's link to child `pid` went into shared memory, as its snapshot says.
bool link_in_shared_memory(pid_t pid) {
  auto snap = mproc::inspect_node(::getpid());
  for (const auto& c : snap.find("children")->as<mproc::value::array_t>())
    if (*c.find("pid") == mproc::value{std::int64_t{pid}})
      return *c.find("link")->find("shared_memory") == mproc::value{true};
  FAIL("no child " << pid << " in " << snap.repr());
  return false;
}

} // namespace

TEST_CASE("requests cross a child's link in shared memory, or its socket when the node says so") {
  auto shared = GENERATE(true, false);
  mproc::node_options options;
  options.shared_memory_links = shared;
  test::scoped_node node{options};
  auto p = node->spawn_process("echo", {});
  for (std::int32_t i = 0; i < 200; ++i)
    REQUIRE(node->request<std::int32_t>(p.actor(), 5s, i) == i);
  CHECK(link_in_shared_memory(p.pid()) == shared);
  p.terminate();
  CHECK(p.join(5s));
}

TEST_CASE("a blocking request times out with errc::timeout, and the link stays usable") {
  test::scoped_node node;
  auto p = node->spawn_process("silent", {});
  CHECK(test::code_of([&] { node->request<std::int32_t>(p.actor(), 100ms, std::int32_t{1}); })
        == errc::timeout);
  CHECK(p.is_alive());
  p.terminate();
  CHECK(p.join(5s));
}

TEST_CASE("node::request calls that time out leave no pending entry behind on the link") {
  test::scoped_node node;
  auto p = node->spawn_process("silent", {});
  auto* via = dynamic_cast<mproc::detail::proxy*>(caf::actor_cast<caf::abstract_actor*>(p.actor()));
  REQUIRE(via != nullptr);
  for (int i = 0; i < 300; ++i)
    CHECK(test::code_of([&] { node->request<std::int32_t>(p.actor(), 1ms, std::int32_t{1}); })
          == errc::timeout);
  // Swept whenever the table doubles past 64: bounded, not one entry per timeout.
  CHECK(via->via()->pending_requests() <= 64);
  p.terminate();
  CHECK(p.join(5s));
}

TEST_CASE("replies racing their requests' timeouts reach each caller once or not at all") {
  // Timeouts around a round trip's length, from two threads at once: each reply lands in its
  // own call or is dropped once that call has given up, never in another call (the next call
  // of a thread sits at the same stack address) nor in one that has returned.
  test::scoped_node node;
  auto p = node->spawn_process("echo", {});
  std::atomic<int> answered{0};
  std::atomic<int> timed_out{0};
  std::atomic<int> wrong{0};
  auto ask = [&](std::int32_t base) {
    for (std::int32_t i = 0; i < 2'000; ++i) {
      try {
        auto timeout = std::chrono::microseconds{(i % 8) * 10};
        if (node->request<std::int32_t>(p.actor(), timeout, base + i) == base + i)
          ++answered;
        else
          ++wrong;
      } catch (const mproc::error& e) {
        ++(e.code() == errc::timeout ? timed_out : wrong);
      }
    }
  };
  std::thread other{ask, 1'000'000};
  ask(0);
  other.join();
  CHECK(wrong == 0);
  CHECK(answered + timed_out == 4'000);
  CHECK(node->request<std::int32_t>(p.actor(), 5s, std::int32_t{7}) == 7);
  p.terminate();
  CHECK(p.join(5s));
}

TEST_CASE("a caller asleep for its reply is woken by it, not by its timeout") {
  // Replies that take milliseconds: the caller stops spinning and sleeps for each one. Were
  // the reply not to wake it, each call would last its whole 10 s timeout.
  test::scoped_node node;
  auto p = node->spawn_process("napper", {});
  auto start = std::chrono::steady_clock::now();
  std::int32_t done = 0;
  for (; done < 50 && std::chrono::steady_clock::now() - start < 5s; ++done)
    REQUIRE(node->request<std::int32_t>(p.actor(), 10s, done) == done);
  CHECK(done == 50);
  p.terminate();
  CHECK(p.join(5s));
}

TEST_CASE("request<R> with a reply of another type is bad_message") {
  test::scoped_node node;
  auto p = node->spawn_process("echo", {});
  auto e = test::error_of([&] { node->request<std::string>(p.actor(), 5s, std::int32_t{1}); });
  CHECK(e.code() == errc::bad_message);
  CHECK_THAT(e.what(), Catch::Contains("(i32)"));
  p.terminate();
  CHECK(p.join(5s));
}

TEST_CASE("a timeout of milliseconds::max() or a century of hours waits for the reply") {
  // In the nanoseconds a wait computes with, both overflowed into the past: the call failed
  // with timeout at once, while the request still ran.
  test::scoped_node node;
  auto p = node->spawn_process("napper", {});
  CHECK(node->request<std::int32_t>(p.actor(), std::chrono::milliseconds::max(), 1) == 1);
  CHECK(node->request<std::int32_t>(p.actor(), std::chrono::hours{24 * 365 * 300}, 2) == 2);
  CHECK(node->request<std::int32_t>(p.actor(), std::chrono::seconds::max(), 3) == 3);
  p.terminate();
  CHECK(p.join(5s));
}

TEST_CASE("a request whose receiver in this node ends without answering fails then, not at its timeout") {
  // (One in another process is not watched: see requester.cpp.)
  test::scoped_node node;
  auto d = node->system().spawn(dropper);
  auto e = test::error_of([&] { node->request<std::int32_t>(d, 30s, std::int32_t{1}); });
  CHECK(e.code() == errc::no_such_actor);  // errc::timeout, 30 s later, before
  CHECK_THAT(e.what(), Catch::Contains("ended before it answered"));
}

TEST_CASE("a peer's request as if from an actor of this node is dropped; a handed-back one is answered") {
  test::scoped_node node;
  auto rec = node->system().spawn(recorder);
  auto p = node->spawn_process("forger", {}, rec);
  // The question goes to the child and comes back to the recorder, which answers the root's
  // caller directly. The forged request, sent first on the same link, never reaches it.
  CHECK(node->request<std::string>(p.actor(), 5s, std::string{"asked"}) == "asked;");
  CHECK(node->request<std::string>(rec, 5s, std::string{"then"}) == "asked;then;");
  caf::anon_send_exit(rec, caf::exit_reason::user_shutdown);
  p.terminate();
  CHECK(p.join(5s));
}
