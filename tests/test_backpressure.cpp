// Backpressure on links: a process that stops reading bounds the memory of the process
// sending to it (node_options::max_link_queue), and nothing is lost once it reads again.
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstring>
#include <fstream>
#include <optional>
#include <string>
#include <thread>

#include <caf/event_based_actor.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/send.hpp>
#include <caf/stateful_actor.hpp>

#include <catch2/catch.hpp>

#include "mproc/runtime/actor_registry.hpp"
#include "mproc/runtime/blob.hpp"
#include "mproc/runtime/node.hpp"
#include "mproc/serialization/bytes.hpp"
#include "support.hpp"

using namespace std::chrono_literals;

namespace {

struct count_state {
  std::int64_t bytes = 0;
  std::int32_t messages = 0;
};

// Counts what it is sent; answers (messages, bytes).
caf::behavior sink(caf::stateful_actor<count_state>* self) {
  return {
    [=](const mproc::bytes& b) {
      self->state.messages += 1;
      self->state.bytes += static_cast<std::int64_t>(b.size());
    },
    [=](const mproc::blob& b) {
      self->state.messages += 1;
      self->state.bytes += static_cast<std::int64_t>(b.size());
    },
    [=](caf::get_atom) { return caf::make_message(self->state.messages, self->state.bytes); },
  };
}

std::size_t rss_bytes() {
  std::ifstream statm{"/proc/self/statm"};
  std::size_t pages = 0, resident = 0;
  statm >> pages >> resident;
  return resident * static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
}

// Sends `n` messages of 1 MiB to `target` from one handler, then answers.
caf::behavior flooder(caf::event_based_actor* self) {
  return {[=](const caf::actor& target, std::int32_t n) {
    mproc::bytes payload(1u << 20, 'x');
    for (std::int32_t i = 0; i < n; ++i)
      self->send(target, payload);
    return n;
  }};
}

// How many messages the sink `p` counted: `expected` once they all arrived (given a minute),
// or what it had then.
std::int32_t messages_counted(mproc::node& node, const mproc::process& p, std::int32_t expected) {
  std::int32_t got = 0;
  test::eventually(60s, [&] {
    auto m = node.request_message(p.actor(), caf::make_message(caf::get_atom::value), 10s);
    got = m.get_as<std::int32_t>(0);
    return got == expected;
  });
  return got;
}

caf::behavior echo(caf::event_based_actor*) {
  return {[](std::int32_t x) { return x; }};
}

} // namespace

MPROC_ACTOR(sink);
MPROC_ACTOR(flooder);
MPROC_ACTOR(echo);

TEST_CASE("a writer flooding a stopped reader is held back, and nothing is lost") {
  constexpr std::size_t limit = 1u << 20;
  constexpr std::int32_t total = 400;  // 400 MiB: far more than the bound
  test::scoped_node node{{.max_link_queue = limit}};
  auto p = node->spawn_process("sink", {});
  REQUIRE(::kill(p.pid(), SIGSTOP) == 0);
  auto rss_before = rss_bytes();

  std::atomic<std::int32_t> sent{0};
  std::atomic<pid_t> writer_tid{0};
  // A plain thread's sends, with anon_send or through a scoped_actor (whose sends carry an
  // execution unit of their own, as an actor's do).
  bool scoped = GENERATE(false, true);
  INFO((scoped ? "scoped_actor" : "anon_send"));
  std::thread writer{[&] {
    writer_tid = static_cast<pid_t>(::syscall(SYS_gettid));
    mproc::bytes payload(1u << 20, 'x');
    std::optional<caf::scoped_actor> self;
    if (scoped)
      self.emplace(node->system());
    for (std::int32_t i = 0; i < total; ++i) {
      if (self)
        (*self)->send(p.actor(), payload);
      else
        caf::anon_send(p.actor(), payload);
      ++sent;
    }
  }};
  // Held back: asleep in the middle of the flood, not done with it.
  bool held = test::eventually(30s, [&] {
    return sent > 0 && writer_tid != 0 && test::thread_state(writer_tid) == 'S' && sent < total;
  });
  auto grown = rss_bytes() > rss_before ? rss_bytes() - rss_before : 0;
  ::kill(p.pid(), SIGCONT);
  writer.join();
  CHECK(held);
  CHECK(sent == total);
  // The bound, a message being encoded and the one being copied, and allocator slack.
  CHECK(grown < 64u << 20);
  INFO("grew by " << (grown >> 20) << " MiB");

  CHECK(messages_counted(*node, p, total) == total);
  p.terminate();
  p.join();
}

TEST_CASE("blobs sent as descriptors to a stopped reader weigh what they hold against the bound") {
  constexpr std::size_t limit = 4u << 20;
  constexpr std::int32_t total = 200;  // 200 MiB of blobs, each a frame of a few dozen bytes
  test::scoped_node node{{.max_link_queue = limit}};
  auto p = node->spawn_process("sink", {});
  REQUIRE(::kill(p.pid(), SIGSTOP) == 0);
  std::atomic<std::int32_t> sent{0};
  std::atomic<pid_t> writer_tid{0};
  std::thread writer{[&] {
    writer_tid = static_cast<pid_t>(::syscall(SYS_gettid));
    for (std::int32_t i = 0; i < total; ++i) {
      mproc::blob_writer w{1u << 20};
      std::memset(w.data(), 'x', w.size());
      caf::anon_send(p.actor(), std::move(w).finish());  // the last handle: the link's now
      ++sent;
    }
  }};
  // Held back once the blobs in the link (queued, or in the socket unread) reach the bound:
  // before, every send went at once, each memfd kept by the socket, hundreds of MiB.
  bool held = test::eventually(30s, [&] {
    return sent > 0 && writer_tid != 0 && test::thread_state(writer_tid) == 'S' && sent < total;
  });
  std::int32_t sent_while_stopped = sent;
  ::kill(p.pid(), SIGCONT);
  writer.join();
  CHECK(held);
  INFO("sent while the reader was stopped: " << sent_while_stopped);
  CHECK(sent_while_stopped <= 8);  // the bound's 4, and the one each side of it
  CHECK(messages_counted(*node, p, total) == total);
  p.terminate();
  p.join();
}

TEST_CASE("a request held back by a blob's weight goes once the reader read past it, not at its timeout") {
  test::scoped_node node{{.max_link_queue = 4u << 20}};
  auto p = node->spawn_process("sink", {});
  REQUIRE(::kill(p.pid(), SIGSTOP) == 0);
  // The socket full and 1 MiB queued behind it, under the bound; then a blob of 8 MiB, which
  // queues (the bound is checked before a frame) and puts the link over it by its weight.
  caf::anon_send(p.actor(), mproc::bytes(1u << 20, 'x'));
  caf::anon_send(p.actor(), mproc::bytes(1u << 20, 'x'));
  mproc::blob_writer w{8u << 20};
  std::memset(w.data(), 'x', w.size());
  caf::anon_send(p.actor(), std::move(w).finish());
  std::atomic<pid_t> asker_tid{0};
  std::atomic<int> answered{-1};  // 1: answered; 0: failed (its timeout)
  std::thread asker{[&] {
    asker_tid = static_cast<pid_t>(::syscall(SYS_gettid));
    try {
      node->request_message(p.actor(), caf::make_message(caf::get_atom::value), 10s);
      answered = 1;
    } catch (const mproc::error&) {
      answered = 0;
    }
  }};
  // Asleep, held back by the weight (the reader is stopped), then the reader goes on: the
  // blob goes out and is read, and nothing in the link says so.
  CHECK(test::eventually(30s, [&] { return asker_tid != 0 && test::thread_state(asker_tid) == 'S'; }));
  ::kill(p.pid(), SIGCONT);
  asker.join();
  CHECK(answered == 1);  // before: queued only at its deadline, then timed out at once
  p.terminate();
  p.join();
}

TEST_CASE("a blocking request keeps its timeout while the link to a stopped process is full") {
  test::scoped_node node{{.max_link_queue = 1u << 20}};
  auto p = node->spawn_process("sink", {});
  REQUIRE(::kill(p.pid(), SIGSTOP) == 0);
  std::atomic<bool> stop{false};
  std::atomic<pid_t> writer_tid{0};
  std::thread writer{[&] {  // fills the link, then waits for room until SIGCONT
    writer_tid = static_cast<pid_t>(::syscall(SYS_gettid));
    mproc::bytes payload(1u << 20, 'x');
    while (!stop)
      caf::anon_send(p.actor(), payload);
  }};
  REQUIRE(test::eventually(30s, [&] { return writer_tid != 0 && test::thread_state(writer_tid) == 'S'; }));
  auto t0 = std::chrono::steady_clock::now();
  auto code = test::code_of([&] { node->request_message(p.actor(), caf::make_message(caf::get_atom::value), 1s); });
  auto waited = std::chrono::steady_clock::now() - t0;
  stop = true;
  ::kill(p.pid(), SIGCONT);
  writer.join();
  CHECK(code == mproc::errc::timeout);
  CHECK(waited < 30s);  // its own timeout, not the stopped process's pause
  p.terminate();
  p.join();
}

TEST_CASE("requests that time out on a full link to a stopped process do not grow the queue") {
  constexpr std::size_t limit = 1u << 20;
  test::scoped_node node{{.max_link_queue = limit}};
  auto p = node->spawn_process("sink", {});
  REQUIRE(::kill(p.pid(), SIGSTOP) == 0);
  mproc::bytes payload(1u << 20, 'x');
  auto rss_before = rss_bytes();
  int timeouts = 0;
  for (int i = 0; i < 48; ++i)  // a caller that retries: 48 MiB if each frame stayed queued
    timeouts += test::code_of([&] { node->request_message(p.actor(), caf::make_message(payload), 100ms); })
                == mproc::errc::timeout;
  auto grown = rss_bytes() > rss_before ? rss_bytes() - rss_before : 0;
  INFO("grew by " << (grown >> 20) << " MiB");
  CHECK(timeouts == 48);
  CHECK(grown < 24u << 20);
  ::kill(p.pid(), SIGCONT);
  p.terminate();
  p.join();
}

TEST_CASE("a delayed message to a stopped process does not hold up the node's timers") {
  test::scoped_node node{{.max_link_queue = 1u << 20}};
  auto p = node->spawn_process("sink", {});
  auto flood = node->spawn("flooder");
  REQUIRE(::kill(p.pid(), SIGSTOP) == 0);
  // The link is full: an actor's sends are queued past the bound.
  CHECK(node->request<std::int32_t>(flood, 30s, p.actor(), std::int32_t{8}) == 8);
  caf::scoped_actor self{node->system()};
  self->delayed_send(p.actor(), 10ms, mproc::bytes(1u << 20, 'y'));  // from the clock thread
  self->delayed_send(self, 50ms, std::int32_t{1});  // behind it on the same clock
  bool fired = false;
  self->receive([&](std::int32_t) { fired = true; }, caf::after(std::chrono::seconds{20}) >> [] {});
  CHECK(fired);
  ::kill(p.pid(), SIGCONT);
  CHECK(test::eventually(60s, [&] {
    auto m = node->request_message(p.actor(), caf::make_message(caf::get_atom::value), 10s);
    return m.get_as<std::int32_t>(0) == 9;
  }));
  caf::anon_send_exit(flood, caf::exit_reason::user_shutdown);
  p.terminate();
  p.join();
}

TEST_CASE("an actor on a thread of its own (detached) sending to a stopped process is not held back") {
  // As the in-process manager is: were its sends held back, it would serve nobody else.
  test::scoped_node node{{.max_link_queue = 1u << 20}};
  auto p = node->spawn_process("sink", {});
  auto flood = node->system().spawn<caf::detached>(flooder);
  REQUIRE(::kill(p.pid(), SIGSTOP) == 0);
  CHECK(node->request<std::int32_t>(flood, 30s, p.actor(), std::int32_t{32}) == 32);
  ::kill(p.pid(), SIGCONT);
  CHECK(test::eventually(60s, [&] {
    auto m = node->request_message(p.actor(), caf::make_message(caf::get_atom::value), 10s);
    return m.get_as<std::int32_t>(0) == 32;
  }));
  caf::anon_send_exit(flood, caf::exit_reason::user_shutdown);
  p.terminate();
  p.join();
}

TEST_CASE("an actor sending to a stopped process is not held back, so the node's other actors run") {
  // One scheduler thread: if the flooding actor's sends waited for room, nothing else could.
  test::scoped_node node{{.threads = 1, .max_link_queue = 1u << 20}};
  auto p = node->spawn_process("sink", {});
  auto flood = node->spawn("flooder");
  auto local = node->spawn("echo");
  REQUIRE(::kill(p.pid(), SIGSTOP) == 0);
  CHECK(node->request<std::int32_t>(flood, 30s, p.actor(), std::int32_t{32}) == 32);
  CHECK(node->request<std::int32_t>(local, 30s, std::int32_t{7}) == 7);
  ::kill(p.pid(), SIGCONT);
  CHECK(test::eventually(60s, [&] {
    auto m = node->request_message(p.actor(), caf::make_message(caf::get_atom::value), 10s);
    return m.get_as<std::int32_t>(0) == 32;
  }));
  caf::anon_send_exit(flood, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(local, caf::exit_reason::user_shutdown);
  p.terminate();
  p.join();
}
