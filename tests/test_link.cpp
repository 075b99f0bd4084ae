// Links: frames over a real socketpair, driven by a real I/O loop; each case runs with the
// byte stream in the socket and in shared memory (link::offer_ring).
#include "mproc/runtime/internal/link.hpp"

#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <functional>
#include <future>
#include <new>

#include <catch2/catch.hpp>

#include "mproc/serialization/envelope.hpp"

using namespace std::chrono_literals;
using mproc::detail::io_loop;
using link_ptr = std::shared_ptr<mproc::detail::link>;

namespace {

mproc::wire::buffer frame_of(const std::string& payload) {
  mproc::wire::buffer buf;
  auto start = mproc::wire::begin_frame(buf);
  buf.write(payload.data(), payload.size());
  mproc::wire::end_frame(buf, start);
  return buf;
}

// Two links over one socketpair, each end collecting what it receives; with
// `shared_memory`, both directions switched to a ring pair before the case begins.
struct pair_of_links {
  io_loop loop;
  link_ptr a, b;
  std::mutex mtx;
  std::vector<std::string> got_a, got_b;
  std::promise<std::string> b_closed;
  std::function<void(std::string_view)> on_b;  // also runs for each frame b receives (loop thread)

  explicit pair_of_links(bool shared_memory, std::uint32_t max_frame = 1u << 26) {
    int fds[2];
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) == 0);
    a = std::make_shared<mproc::detail::link>(loop, fds[0], max_frame);
    b = std::make_shared<mproc::detail::link>(loop, fds[1], max_frame);
    b->allow_ring();  // a's offer, when the case makes one
    loop.start();
    std::promise<void> opened;
    loop.post([&] {
      a->open([this](std::string_view p) { std::lock_guard g{mtx}; got_a.emplace_back(p); },
              [](const std::string&) {});
      b->open([this](std::string_view p) {
                std::lock_guard g{mtx};
                got_b.emplace_back(p);
                if (on_b)
                  on_b(p);
              },
              [this](const std::string& why) { b_closed.set_value(why); });
      opened.set_value();
    });
    opened.get_future().wait();
    if (!shared_memory)
      return;
    std::promise<bool> offered;
    loop.post([&] { offered.set_value(a->offer_ring()); });
    REQUIRE(offered.get_future().get());
    for (int i = 0; i < 1000 && !(a->on_ring() && b->on_ring()); ++i)
      std::this_thread::sleep_for(5ms);
    REQUIRE(a->on_ring());
    REQUIRE(b->on_ring());
  }
  ~pair_of_links() { loop.stop(); }

  std::size_t received_by_b() {
    std::lock_guard g{mtx};
    return got_b.size();
  }
  bool wait_for_b(std::size_t n) {
    for (int i = 0; i < 1000 && received_by_b() < n; ++i)
      std::this_thread::sleep_for(5ms);
    return received_by_b() >= n;
  }
};

} // namespace

TEST_CASE("frames written from several threads arrive whole and in each thread's order") {
  pair_of_links p{GENERATE(false, true)};
  constexpr int per_thread = 2000;
  std::vector<std::thread> writers;
  std::atomic<int> refused{0};  // Catch's assertions are not thread-safe: count, check later
  for (int t = 0; t < 4; ++t)
    writers.emplace_back([&, t] {
      for (int i = 0; i < per_thread; ++i)
        if (!p.a->write(frame_of(std::to_string(t) + ":" + std::to_string(i))))
          ++refused;
    });
  for (auto& w : writers)
    w.join();
  REQUIRE(refused == 0);
  REQUIRE(p.wait_for_b(4 * per_thread));
  std::vector<int> next(4, 0);
  for (auto& f : p.got_b) {
    int t = f[0] - '0';
    CHECK(f == std::to_string(t) + ":" + std::to_string(next[t]++));
  }
}

TEST_CASE("a frame larger than the socket buffer is sent in parts and arrives whole") {
  pair_of_links p{GENERATE(false, true)};
  std::string big(16u << 20, 'q');
  big[12345] = 'x';
  REQUIRE(p.a->write(frame_of(big)));
  REQUIRE(p.a->write(frame_of("after")));
  CHECK(p.a->flush(10s));
  REQUIRE(p.wait_for_b(2));
  CHECK(p.got_b[0] == big);
  CHECK(p.got_b[1] == "after");
}

TEST_CASE("small frames queued behind a blocked write share its buffers and still arrive whole, in order, each counted") {
  using namespace mproc::wire;
  pair_of_links p{GENERATE(false, true)};
  // A frame larger than the socket takes: what follows queues behind it, and small frames
  // join one another's buffers (link::join_tail_locked).
  auto writes_before = p.a->count().writes_out;  // the ring's offer and ring_on
  REQUIRE(p.a->write(frame_of(std::string(8u << 20, 'b'))));
  constexpr int small = 5000;
  for (int i = 0; i < small; ++i)
    REQUIRE(p.a->write(frame_of("s" + std::to_string(i))));
  // A frame that borrows its payload, and one with a payload of 5 KiB, do not join: their
  // neighbours keep their order around them.
  auto payload = std::make_shared<mproc::bytes>(borrow_min, 'z');
  frame_out borrowed;
  auto st = borrowed.state(nullptr);
  packer pk{borrowed.buf};
  codec<mproc::bytes>::encode(pk, *payload, st);
  REQUIRE(borrowed.borrowed.size() == 1);
  borrowed.keep = payload;
  end_frame(borrowed);
  REQUIRE(p.a->write(std::move(borrowed), mproc::detail::link::flow::data) == mproc::detail::link::written::queued);
  REQUIRE(p.a->write(frame_of(std::string(5 * 1024, 'm'))));
  for (int i = 0; i < small; ++i)
    REQUIRE(p.a->write(frame_of("t" + std::to_string(i))));
  CHECK(p.a->flush(10s));
  CHECK(p.a->count().backlog == 0);
  CHECK(p.a->count().writes_out == writes_before + 2 * small + 3);
  REQUIRE(p.wait_for_b(2 * small + 3));
  std::lock_guard g{p.mtx};
  REQUIRE(p.got_b.size() == 2 * small + 3);
  CHECK(p.got_b[0] == std::string(8u << 20, 'b'));
  for (int i = 0; i < small; ++i)
    REQUIRE(p.got_b[1 + i] == "s" + std::to_string(i));
  CHECK(p.got_b[1 + small].size() > borrow_min);
  CHECK(p.got_b[2 + small] == std::string(5 * 1024, 'm'));
  for (int i = 0; i < small; ++i)
    REQUIRE(p.got_b[3 + small + i] == "t" + std::to_string(i));
}

TEST_CASE("a frame with more borrowed payloads than one write takes arrives as if copied, and lets them go") {
  using namespace mproc::wire;
  std::vector<mproc::bytes> items;
  for (int i = 0; i < 100; ++i)  // 100 borrowed payloads: 201 pieces, over 3 sendmsg calls
    items.emplace_back(borrow_min + static_cast<std::size_t>(i), static_cast<char>('a' + i % 26));
  buffer copied;
  packer copier{copied};
  codec_state plain;
  codec<std::vector<mproc::bytes>>::encode(copier, items, plain);

  auto owner = std::make_shared<std::vector<mproc::bytes>>(items);
  std::weak_ptr<std::vector<mproc::bytes>> watch = owner;
  frame_out out;
  auto st = out.state(nullptr);
  packer pk{out.buf};
  codec<std::vector<mproc::bytes>>::encode(pk, *owner, st);
  REQUIRE(out.borrowed.size() == 100);
  CHECK(out.buf.size() < 2000);  // headers only
  out.keep = std::move(owner);
  end_frame(out);

  pair_of_links p{GENERATE(false, true)};
  REQUIRE(p.a->write(std::move(out), mproc::detail::link::flow::data) == mproc::detail::link::written::queued);
  REQUIRE(p.a->write(frame_of("after")));
  CHECK(p.a->flush(10s));
  REQUIRE(p.wait_for_b(2));
  CHECK(p.got_b[0] == std::string(copied.data(), copied.size()));
  CHECK(p.got_b[1] == "after");
  CHECK(watch.expired());
}

TEST_CASE("descriptors written with a frame arrive with it, before the frame is handed out") {
  using namespace mproc::wire;
  pair_of_links p{GENERATE(false, true)};
  std::vector<int> taken;
  std::promise<void> got;
  {
    std::lock_guard g{p.mtx};
    p.on_b = [&](std::string_view payload) {  // takes the descriptors as the frame arrives
      if (payload == "with two")
        if (auto fds = p.b->take_fds(2)) {
          taken = *fds;
          got.set_value();
        }
    };
  }
  REQUIRE(p.a->write(frame_of("before")));
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  frame_out out;
  out.buf.write("with two", 8);
  out.fds = {fds[0], fds[1]};  // the frame owns them now
  end_frame(out);
  REQUIRE(p.a->write(std::move(out), mproc::detail::link::flow::data) == mproc::detail::link::written::queued);
  REQUIRE(got.get_future().wait_for(10s) == std::future_status::ready);
  REQUIRE(taken.size() == 2);
  // The received copies are the same pipe: a byte written into one comes out of the other.
  REQUIRE(::write(taken[1], "x", 1) == 1);
  char c = 0;
  CHECK(::read(taken[0], &c, 1) == 1);
  CHECK(c == 'x');
  for (int fd : taken)
    ::close(fd);
}

TEST_CASE("an oversized frame closes the receiving link with the reason") {
  pair_of_links p{GENERATE(false, true), 1024};
  REQUIRE(p.a->write(frame_of(std::string(2048, 'z'))));
  auto why = p.b_closed.get_future();
  REQUIRE(why.wait_for(5s) == std::future_status::ready);
  CHECK_THAT(why.get(), Catch::Contains("exceeds the limit of 1024"));
  CHECK(p.b->closed());
}

TEST_CASE("no memory for a frame closes that link with the reason, not the process") {
  pair_of_links p{GENERATE(false, true)};
  p.on_b = [](std::string_view) { throw std::bad_alloc{}; };  // as a decode of a large frame
  REQUIRE(p.a->write(frame_of("too much")));
  auto why = p.b_closed.get_future();
  REQUIRE(why.wait_for(5s) == std::future_status::ready);
  CHECK_THAT(why.get(), Catch::Contains("out of memory"));
  CHECK(p.b->closed());
}

TEST_CASE("closing one end is seen by the other; writes to a closed link fail") {
  pair_of_links p{GENERATE(false, true)};
  std::promise<void> closed;
  p.loop.post([&] {
    p.a->close("test");
    closed.set_value();
  });
  closed.get_future().wait();
  CHECK_FALSE(p.a->write(frame_of("late")));
  auto why = p.b_closed.get_future();
  REQUIRE(why.wait_for(5s) == std::future_status::ready);
  CHECK(why.get() == "connection closed by peer");
}
