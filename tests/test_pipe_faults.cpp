// Pipe ends under faults: a broken header from the other end, a message this process has no
// memory for, and a send waiting for room when its node ends with a reader that never reads.
#include "mproc/actors/pipe.hpp"

#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <utility>

#include <catch2/catch.hpp>

#include "mproc/actors/pipe_socket.hpp"
#include "mproc/runtime/node.hpp"
#include "mproc/serialization/frame.hpp"
#include "pipe_ends.hpp"
#include "support.hpp"

using namespace std::chrono_literals;
using mproc::errc;
using test::code_of;
using test::socket_ends;

namespace {

using end_ptr = std::shared_ptr<mproc::detail::pipe_socket>;

std::string header(std::uint32_t length) {
  std::string h(mproc::wire::frame_header_size, '\0');
  mproc::wire::put_frame_length(h.data(), length);
  return h;
}

// Raw bytes into the socket, as a broken or hostile other end writes them.
void write_raw(const end_ptr& end, const std::string& bytes) {
  REQUIRE(::send(end->fd(), bytes.data(), bytes.size(), MSG_NOSIGNAL)
          == static_cast<ssize_t>(bytes.size()));
}

// This process's address space now (VmSize), in bytes.
rlim_t address_space() {
  std::ifstream in{"/proc/self/status"};
  std::string key;
  rlim_t kib = 0;
  while (in >> key)
    if (key == "VmSize:" && in >> kib)
      break;
  return kib * 1024;
}

// The soft address-space limit lowered to `limit` while it lives, then as it was.
struct address_space_limit {
  rlimit before{};
  explicit address_space_limit(rlim_t limit) {
    REQUIRE(::getrlimit(RLIMIT_AS, &before) == 0);
    rlimit lowered = before;
    lowered.rlim_cur = limit;
    REQUIRE(::setrlimit(RLIMIT_AS, &lowered) == 0);
  }
  ~address_space_limit() { ::setrlimit(RLIMIT_AS, &before); }
};

} // namespace

TEST_CASE("poll sees a broken header buffered behind a message; recv then fails at once") {
  auto [reader, writer] = socket_ends();
  // One write, so one read takes both: the header stays buffered, the socket is empty.
  write_raw(writer, header(2) + "hi" + header(0xffffffffu));
  auto first = reader->recv(std::nullopt);
  CHECK(std::string(first.begin(), first.end()) == "hi");
  CHECK(reader->poll(10'000ms));  // nothing more comes: waiting would wait for ever
  CHECK(code_of([&] { reader->recv(0ms); }) == errc::bad_message);
}

TEST_CASE("a message this process has no memory for closes the end; no later recv is fed "
          "its body") {
#if defined(__SANITIZE_ADDRESS__)
  WARN("skipped: AddressSanitizer aborts rather than throw when the address space runs out");
  return;
#endif
  // Only this thread runs here (no node): no other thread allocates while the limit holds.
  auto [reader, writer] = socket_ends();
  constexpr std::uint32_t huge = 900u << 20;  // below the pipe's limit, above what is left
  write_raw(writer, header(huge) + std::string(4096, 'A'));
  errc starved = errc::none;
  {
    address_space_limit limit{address_space() + (128u << 20)};
    starved = code_of([&] { reader->recv(1s); });
  }
  CHECK(starved == errc::closed);
  CHECK(code_of([&] { reader->recv(0ms); }) == errc::closed);  // not its body as a header
}

TEST_CASE("a send waiting for room when its node ends is answered once the drain gives up") {
  mproc::connection a, b;  // outlive the node: b never reads, and is not closed by its end
  std::future<errc> waiting;
  {
    test::scoped_node node;
    std::tie(a, b) = mproc::pipe(*node);
    a.send_bytes(mproc::bytes(20u << 20, 'x'));  // more than an end holds unsent
    waiting = std::async(std::launch::async, [a] {
      auto end = a;
      return code_of([&] { end.send_bytes(mproc::bytes(16, 'y')); });
    });
  }  // the node ends: the drain waits 10 s for b, then drops what is unsent
  bool answered = waiting.wait_for(60s) == std::future_status::ready;
  CHECK(answered);
  if (!answered)
    a.close();  // lets the sender go, for the test to end
  CHECK(waiting.get() == errc::closed);
  CHECK(code_of([&] { b.recv_bytes(5s); }) == errc::closed);  // what came is cut short: EOF
}

TEST_CASE("timeouts of seconds::max() and hours::max() wait for ever, not overflow into none") {
  test::scoped_node node;
  auto [a, b] = mproc::pipe(*node);
  std::thread sender{[a = a]() mutable {
    std::this_thread::sleep_for(100ms);  // after the waits began, most likely; either way works
    a.send_bytes(mproc::bytes(1, 'x'));
    a.send_bytes(mproc::bytes(1, 'y'));
  }};
  CHECK(b.poll(std::chrono::seconds::max()));
  CHECK(b.recv_bytes(std::chrono::hours::max()) == mproc::bytes(1, 'x'));
  CHECK(b.recv_bytes(std::chrono::seconds::max()) == mproc::bytes(1, 'y'));
  sender.join();
}
