// Pipe: both directions, one-way pipes, bytes and messages, and EOF when the other end
// closes or its process dies.
#include "mproc/actors/pipe.hpp"

#include <sys/socket.h>
#include <sys/syscall.h>

#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <thread>
#include <utility>

#include <caf/blocking_actor.hpp>
#include <caf/event_based_actor.hpp>

#include <catch2/catch.hpp>

#include "mproc/actors/pipe_socket.hpp"
#include "mproc/actors/queue.hpp"
#include "mproc/runtime/actor_registry.hpp"
#include "mproc/runtime/node.hpp"
#include "pipe_ends.hpp"
#include "support.hpp"

using namespace std::chrono_literals;
using mproc::errc;
using test::code_of;
using test::socket_ends;

// A type that cannot cross processes (no MPROC_MESSAGE).
struct unsendable {};
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(unsendable)

namespace {

// Whether thread `tid` sleeps in poll(2) (ppoll where there is no poll).
bool in_poll(pid_t tid) {
#ifdef SYS_poll
  if (test::sleeping_in(tid, SYS_poll))
    return true;
#endif
  return test::sleeping_in(tid, SYS_ppoll);
}

// Sends back every message until EOF.
void echo_end(caf::blocking_actor*, mproc::connection c) {
  try {
    for (;;)
      c.send_message(c.recv());
  } catch (const mproc::error&) {
    // EOF: the other end is gone
  }
}

// Sends two messages, then closes its end.
void two_then_close(caf::blocking_actor*, mproc::connection c) {
  c.send(std::int32_t{1});
  c.send(std::int32_t{2});
  c.close();
}

// Holds its end and waits to be killed.
void holder(caf::blocking_actor* self, mproc::connection c) {
  c.send(std::string{"ready"});
  self->receive([](caf::get_atom) {});
}

// Two children joined by a pipe the root made: one asks, the other answers; the asker's exit
// code says whether the answer came.
void asker(caf::blocking_actor*, mproc::connection c) {
  c.send(std::string{"ping"});
  if (c.recv_as<std::string>(/*on EOF: throws, exit 1*/) != "pong")
    throw std::runtime_error("wrong answer");
}
void answerer(caf::blocking_actor*, mproc::connection c) {
  if (c.recv_as<std::string>() == "ping")
    c.send(std::string{"pong"});
}

// An actor that is handed a pipe end in a message and echoes one message through it.
caf::behavior end_taker(caf::event_based_actor*) {
  return {[](mproc::connection c) {
    c.send_message(c.recv(5s));
    return std::int32_t{1};
  }};
}

// Reads numbers until EOF and writes how many arrived in order to `path`.
void counter(caf::blocking_actor*, mproc::connection c, std::string path) {
  std::int64_t n = 0;
  try {
    for (;;) {
      if (c.recv_as<std::int64_t>() != n)
        break;
      ++n;
    }
  } catch (const mproc::error&) {
    // EOF: the sender is gone
  }
  std::ofstream{path} << n;
}

} // namespace

MPROC_ACTOR(echo_end);
MPROC_ACTOR(two_then_close);
MPROC_ACTOR(holder);
MPROC_ACTOR(asker);
MPROC_ACTOR(answerer);
MPROC_ACTOR(end_taker);
MPROC_ACTOR(counter);

TEST_CASE("a duplex pipe carries messages and bytes both ways in order") {
  test::scoped_node node;
  auto [a, b] = mproc::pipe(*node);
  for (std::int32_t i = 0; i < 100; ++i)
    a.send(i, std::string{"n"});
  for (std::int32_t i = 0; i < 100; ++i) {
    auto m = b.recv(5s);
    REQUIRE(m.match_elements<std::int32_t, std::string>());
    CHECK(m.get_as<std::int32_t>(0) == i);
  }
  b.send_bytes(mproc::bytes{'x', '\0', 'y'});
  CHECK(a.recv_bytes(5s) == mproc::bytes{'x', '\0', 'y'});
  b.send(2.5);
  CHECK(a.recv_as<double>() == 2.5);
}

TEST_CASE("poll says whether recv would wait") {
  test::scoped_node node;
  auto [a, b] = mproc::pipe(*node);
  CHECK_FALSE(b.poll(20ms));
  a.send(std::int32_t{1});
  CHECK(b.poll(5s));
  CHECK(b.recv_as<std::int32_t>() == 1);
}

TEST_CASE("recv errors: timeout, wrong type, raw bytes read as a message") {
  test::scoped_node node;
  auto [a, b] = mproc::pipe(*node);
  CHECK(code_of([&] { b.recv(20ms); }) == errc::empty);
  a.send(std::string{"text"});
  CHECK(code_of([&] { b.recv_as<std::int32_t>(); }) == errc::bad_message);
  a.send_bytes(mproc::bytes{'\xc1'});  // not a msgpack value
  CHECK(code_of([&] { b.recv(5s); }) == errc::bad_message);
}

TEST_CASE("a one-way pipe reads at one end and writes at the other") {
  test::scoped_node node;
  auto [reader, writer] = mproc::pipe(*node, false);
  CHECK(reader.readable());
  CHECK_FALSE(reader.writable());
  CHECK(writer.writable());
  CHECK_FALSE(writer.readable());
  CHECK(code_of([&] { reader.send(std::int32_t{1}); }) == errc::bad_arguments);
  CHECK(code_of([&] { writer.recv(); }) == errc::bad_arguments);
  writer.send(std::int32_t{5});
  CHECK(reader.recv_as<std::int32_t>() == 5);
}

TEST_CASE("a child echoes through its end of the pipe") {
  test::scoped_node node;
  auto [here, there] = mproc::pipe(*node);
  auto p = node->spawn_process("echo_end", {}, there);
  // Far more than the sockets hold both ways: send() leaves what they do not take to the
  // background writer instead of waiting for a reader that is itself waiting to write.
  for (std::int32_t i = 0; i < 20000; ++i)
    here.send(i);
  for (std::int32_t i = 0; i < 20000; ++i)
    REQUIRE(here.recv_as<std::int32_t>() == i);
  here.close();
  CHECK(p.join(5s));
  CHECK(p.exitcode() == 0);
}

TEST_CASE("the other end sees EOF after what was sent when an end closes") {
  test::scoped_node node;
  auto [here, there] = mproc::pipe(*node);
  auto p = node->spawn_process("two_then_close", {}, there);
  CHECK(here.recv_as<std::int32_t>() == 1);
  CHECK(here.recv_as<std::int32_t>() == 2);
  CHECK(code_of([&] { here.recv(5s); }) == errc::closed);
  CHECK(code_of([&] { here.send(std::int32_t{3}); }) == errc::closed);
  CHECK(p.join(5s));
}

TEST_CASE("the other end sees EOF when the process holding an end dies") {
  test::scoped_node node;
  auto [here, there] = mproc::pipe(*node);
  auto p = node->spawn_process("holder", {}, there);
  CHECK(here.recv_as<std::string>() == "ready");
  p.kill();
  REQUIRE(p.join(5s));
  CHECK(code_of([&] { here.recv(5s); }) == errc::closed);
}

TEST_CASE("two children holding the ends of a pipe talk to each other directly") {
  test::scoped_node node;
  auto [a, b] = mproc::pipe(*node);
  auto p = node->spawn_process("asker", {}, a);
  auto q = node->spawn_process("answerer", {}, b);
  REQUIRE(p.join(10s));
  REQUIRE(q.join(10s));
  CHECK(p.exitcode() == 0);
  CHECK(q.exitcode() == 0);
}

TEST_CASE("an end sent in a message to a child's actor works there, and is closed here") {
  test::scoped_node node;
  auto [here, there] = mproc::pipe(*node);
  auto p = node->spawn_process("end_taker", {});
  here.send(std::string{"through"});
  CHECK(node->request<std::int32_t>(p.actor(), 10s, there) == 1);
  CHECK(here.recv_as<std::string>() == "through");
  CHECK(code_of([&] { there.send(std::int32_t{1}); }) == errc::closed);
  p.terminate();
  CHECK(p.join(5s));
}

TEST_CASE("an end can be sent once; a second send is refused with a clear error") {
  test::scoped_node node;
  auto [here, there] = mproc::pipe(*node);
  auto p = node->spawn_process("echo_end", {}, there);
  auto e = test::error_of([&] { node->spawn_process("echo_end", {}, there); });
  CHECK_THAT(e.what(), Catch::Contains("sent to another process"));
  here.send(std::int32_t{3});
  CHECK(here.recv_as<std::int32_t>() == 3);
  here.close();
  CHECK(p.join(5s));
}

TEST_CASE("an end cannot go inside a queue item: the put is refused, the end still works") {
  test::scoped_node node;
  auto [here, there] = mproc::pipe(*node);
  mproc::queue<mproc::connection> q{*node};
  auto e = test::error_of([&] { q.put(there); });
  CHECK_THAT(e.what(), Catch::Contains("not inside a queue item"));
  there.send(std::int32_t{4});
  CHECK(here.recv_as<std::int32_t>() == 4);
}

TEST_CASE("pipes and the ends sent to children leave no descriptor behind") {
  test::scoped_node node;
  auto round = [&](int i) {
    auto [here, there] = mproc::pipe(*node);
    auto p = node->spawn_process("echo_end", {}, there);
    here.send(std::int32_t{i});
    CHECK(here.recv_as<std::int32_t>() == i);
    here.close();
    CHECK(p.join(5s));
  };
  round(0);  // counted after the node's own descriptors exist (its fork server's socket)
  auto before = test::entries("/proc/self/fd");
  for (int i = 1; i < 5; ++i)
    round(i);
  CHECK(test::entries("/proc/self/fd") == before);
}

TEST_CASE("an end sent away takes along what it had read but not taken, and what it had not yet written") {
  test::scoped_node node;
  auto [here, there] = mproc::pipe(*node);
  here.send(std::int32_t{1});
  here.send(std::int32_t{2});
  CHECK(there.recv_as<std::int32_t>() == 1);  // one read took both: 2 waits in `there`
  for (std::int32_t i = 0; i < 3000; ++i)      // more than the socket holds: some wait unsent
    there.send(i);
  auto p = node->spawn_process("echo_end", {}, there);
  for (std::int32_t i = 0; i < 3000; ++i)
    REQUIRE(here.recv(5s).get_as<std::int32_t>(0) == i);
  CHECK(here.recv(5s).get_as<std::int32_t>(0) == 2);  // echoed by the child, after the rest
  here.close();
  CHECK(p.join(5s));
}

TEST_CASE("what a root sent just before its node ended arrives whole, without a join") {
  auto path = std::filesystem::temp_directory_path() / ("mproc-pipe-count-" + std::to_string(::getpid()));
  constexpr std::int64_t total = 50'000;  // far more than the socket holds: most wait unsent
  {
    auto node = test::make_node();  // a plain node: its end joins the child, as a user's would
    auto [here, there] = mproc::pipe(node);
    node.spawn_process("counter", {}, there, path.string());
    for (std::int64_t i = 0; i < total; ++i)
      here.send(i);
  }  // handles dropped, node destroyed: it writes what is left, then joins the child
  std::ifstream in{path};
  std::int64_t got = -1;
  in >> got;
  std::filesystem::remove(path);
  CHECK(got == total);
}

TEST_CASE("a message carrying an end that cannot go out gives the end back untouched") {
  test::scoped_node node;
  auto [here, there] = mproc::pipe(*node);
  auto p = node->spawn_process("end_taker", {});
  here.send(std::int32_t{7});  // waits in `there`'s socket
  // An element after the end that cannot be encoded, then a frame above the child's maximum.
  CHECK(code_of([&] {
    node->request_message(p.actor(), caf::make_message(there, unsendable{}), 5s);
  }) == errc::unknown_message_type);
  CHECK(code_of([&] {
    node->request_message(p.actor(), caf::make_message(there, mproc::bytes(81u << 20, 'x')), 5s);
  }) == errc::frame_too_large);
  CHECK(there.recv_as<std::int32_t>() == 7);  // still here, still whole
  there.send(std::int32_t{8});
  CHECK(here.recv_as<std::int32_t>() == 8);
  p.terminate();
  CHECK(p.join(5s));
}

TEST_CASE("a timed recv returns on time while a message is still arriving; it comes whole later") {
  test::scoped_node node;
  auto [a, b] = mproc::pipe(*node);
  const char header[4] = {0, 0, 0, 100};  // a frame of 100 bytes, as a stalled sender leaves it
  REQUIRE(::write(a.fileno(), header, 4) == 4);
  REQUIRE(::write(a.fileno(), "xy", 2) == 2);
  CHECK(code_of([&] { b.recv_bytes(100ms); }) == errc::empty);
  CHECK(code_of([&] { b.recv_bytes(100ms); }) == errc::empty);  // from where it stopped
  std::string rest(98, 'z');
  REQUIRE(::write(a.fileno(), rest.data(), rest.size()) == 98);
  auto whole = std::string{"xy"} + rest;
  CHECK(b.recv_bytes(5s) == mproc::bytes(whole.begin(), whole.end()));
  a.send(std::int32_t{7});  // the stream is still in step
  CHECK(b.recv_as<std::int32_t>() == 7);
}

TEST_CASE("a timed call waits for another thread's untimed recv only until its own timeout") {
  test::scoped_node node;
  auto [a, b] = mproc::pipe(*node);
  std::atomic<bool> received{false};
  std::atomic<pid_t> reader_tid{0};
  std::thread reader{[&, b = b]() mutable {
    reader_tid = ::gettid();
    try {
      b.recv();
      received = true;
    } catch (const mproc::error&) {
    }
  }};
  std::mutex m;
  std::condition_variable cv;
  bool polled = false;
  std::thread sender{[&, a = a]() mutable {  // unblocks the reader once the poll returned (10 s at most)
    std::unique_lock lock{m};
    cv.wait_for(lock, 10s, [&] { return polled; });
    a.send(std::int32_t{1});
  }};
  // Asleep: in its recv, holding the end's receive lock (nothing else there sleeps).
  REQUIRE(test::eventually(5000ms, [&] { return reader_tid != 0 && test::thread_state(reader_tid) == 'S'; }));
  CHECK_FALSE(b.poll(50ms));
  CHECK(code_of([&] { b.recv(50ms); }) == errc::empty);
  CHECK_FALSE(received);  // the reader still waits: the calls did not wait for its message
  {
    std::lock_guard lock{m};
    polled = true;
  }
  cv.notify_all();
  sender.join();
  reader.join();
  CHECK(received);
}

TEST_CASE("a timeout of a century or more is a wait for ever, not none") {
  test::scoped_node node;
  auto [a, b] = mproc::pipe(*node);
  std::thread sender{[a = a]() mutable {
    std::this_thread::sleep_for(50ms);  // either order gives the same answer
    a.send(std::int32_t{1});
  }};
  CHECK(b.poll(std::chrono::milliseconds::max()));
  CHECK(b.recv_as<std::int32_t>() == 1);
  sender.join();
}

TEST_CASE("a timeout of 2^32 ms (49.7 days) waits: poll's int of milliseconds does not wrap to none") {
  test::scoped_node node;
  auto [a, b] = mproc::pipe(*node);
  std::atomic<pid_t> poller_tid{0};
  std::atomic<bool> returned{false};
  bool ready = false;
  std::thread poller{[&, b = b]() mutable {
    poller_tid = ::gettid();
    ready = b.poll(std::chrono::milliseconds{std::int64_t{1} << 32});
    returned = true;
  }};
  // Sent once the poller sleeps in poll(2), or already returned (wrongly, at once); sent in
  // any case, so the poller ends.
  CHECK(test::eventually(10s, [&] { return returned || (poller_tid != 0 && in_poll(poller_tid)); }));
  a.send(std::int32_t{1});
  poller.join();
  CHECK(ready);
  CHECK(b.recv_as<std::int32_t>() == 1);
}

TEST_CASE("a reader that spun for its next message sleeps when none comes, and close() ends its wait") {
  auto [reader, writer] = socket_ends();
  writer->send("x", 1, std::nullopt);
  CHECK(reader->recv(std::nullopt).size() == 1);  // a new end's first wait spins (two CPUs)
  std::atomic<pid_t> tid{0};
  std::atomic<int> outcome{0};  // 1 a message (none was sent), 2 closed, 3 another error
  std::thread waiter{[&] {
    tid = ::gettid();
    try {
      reader->recv(std::nullopt);
      outcome = 1;
    } catch (const mproc::error& e) {
      outcome = e.code() == errc::closed ? 2 : 3;
    }
  }};
  // A spin that did not end would keep the thread running, never asleep in poll or recv.
  CHECK(test::eventually(10s, [&] {
    return tid != 0 && (in_poll(tid) || test::sleeping_in(tid, SYS_recvfrom));
  }));
  reader->close();
  waiter.join();
  CHECK(outcome == 2);
}

TEST_CASE("a timed recv returns on time whether it spins or sleeps, and the message comes later") {
  auto [reader, writer] = socket_ends();
  writer->send("x", 1, std::nullopt);
  CHECK(reader->recv(std::nullopt).size() == 1);  // a new end's waits spin first (two CPUs)
  CHECK(code_of([&] { reader->recv(0ms); }) == errc::empty);  // a try: no spin
  CHECK(code_of([&] { reader->recv(1ms); }) == errc::empty);  // spins, then sleeps the rest
  auto t0 = std::chrono::steady_clock::now();
  CHECK(code_of([&] { reader->recv(20ms); }) == errc::empty);  // beyond it: slept
  CHECK(std::chrono::steady_clock::now() - t0 >= 20ms);       // never before its time
  writer->send("yz", 2, std::nullopt);
  CHECK(reader->recv(1s).size() == 2);
}

TEST_CASE("fileno of a closed end is refused: its number may be another file's") {
  test::scoped_node node;
  auto [a, b] = mproc::pipe(*node);
  CHECK(a.fileno() >= 0);
  a.close();
  CHECK(code_of([&] { a.fileno(); }) == errc::closed);
}

TEST_CASE("an end closed while it is being sent away still works where it arrives") {
  int fds[2];
  REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) == 0);
  auto here = std::make_shared<mproc::detail::pipe_socket>(fds[0]);
  auto handoff = here->lend();  // as a spawn's arguments are encoded
  here->close();                // another thread drops it meanwhile
  here->settle_lend(true);      // the frame carrying it went out
  REQUIRE(::send(fds[1], "x", 1, MSG_NOSIGNAL) == 1);
  char got = 0;
  CHECK(::read(handoff.fd, &got, 1) == 1);  // not the EOF of a socket shut down under it
  CHECK(got == 'x');
  ::close(handoff.fd);
  ::close(fds[1]);
}

TEST_CASE("an end sent away while a timed recv had begun a message takes that part along") {
  int fds[2];
  REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) == 0);
  auto here = std::make_shared<mproc::detail::pipe_socket>(fds[0]);
  const char begun[6] = {0, 0, 0, 3, 'a', 'b'};  // a 3-byte frame, 2 bytes of it sent
  REQUIRE(::send(fds[1], begun, sizeof begun, MSG_NOSIGNAL) == 6);
  CHECK(code_of([&] { here->recv(50ms); }) == errc::empty);
  auto handoff = here->lend();
  CHECK(handoff.unread == mproc::bytes(begun, begun + sizeof begun));  // header and all
  here->settle_lend(true);
  ::close(handoff.fd);
  ::close(fds[1]);
}
