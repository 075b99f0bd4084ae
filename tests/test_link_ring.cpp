// A link offered shared memory by an end that is not a link (a raw socket written by hand):
// what it accepts, what it declines, and what a hostile other side cannot do to it.
#include "mproc/runtime/internal/link.hpp"
#include "mproc/runtime/internal/ring.hpp"

#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <functional>
#include <future>
#include <mutex>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "mproc/runtime/internal/fd_passing.hpp"
#include "mproc/serialization/envelope.hpp"

using namespace std::chrono_literals;
using mproc::detail::io_loop;
using mproc::detail::ring_header;
using mproc::detail::ring_mapping;

namespace {

std::string frame(std::initializer_list<unsigned char> payload) {
  std::string f(4, '\0');
  mproc::wire::put_frame_length(f.data(), static_cast<std::uint32_t>(payload.size()));
  for (auto b : payload)
    f.push_back(static_cast<char>(b));
  return f;
}

std::string offer_of(std::uint32_t size) {
  return frame({0x92, 13, 0xce, static_cast<unsigned char>(size >> 24),
                static_cast<unsigned char>(size >> 16), static_cast<unsigned char>(size >> 8),
                static_cast<unsigned char>(size)});
}

// A link on one end of a socketpair; the test writes the other end by hand.
struct hand_written_peer {
  io_loop loop;
  int raw = -1;
  std::shared_ptr<mproc::detail::link> l;
  std::mutex mtx;
  std::vector<std::string> got;
  std::promise<std::string> closed;
  std::function<void(std::string_view)> on_frame;  // also runs for each frame (loop thread)

  explicit hand_written_peer(bool accepts_rings = true) {
    int fds[2];
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) == 0);
    raw = fds[0];
    l = std::make_shared<mproc::detail::link>(loop, fds[1], 1u << 20);
    if (accepts_rings)
      l->allow_ring();
    loop.start();
    std::promise<void> opened;
    loop.post([&] {
      l->open([this](std::string_view p) {
                std::lock_guard g{mtx};
                got.emplace_back(p);
                if (on_frame)
                  on_frame(p);
              },
              [this](const std::string& why) { closed.set_value(why); });
      opened.set_value();
    });
    opened.get_future().wait();
  }
  ~hand_written_peer() {
    loop.stop();
    ::close(raw);
  }

  void send(const std::string& bytes, const std::vector<int>& fds = {}) {
    iovec iov{const_cast<char*>(bytes.data()), bytes.size()};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 4)];
    mproc::detail::attach_fds(msg, control, fds);
    REQUIRE(::sendmsg(raw, &msg, MSG_NOSIGNAL) == static_cast<long>(bytes.size()));
  }
  // Reads exactly `n` bytes from the link's socket.
  std::string read(std::size_t n) {
    std::string out(n, '\0');
    std::size_t at = 0;
    while (at < n) {
      auto k = ::recv(raw, out.data() + at, n - at, 0);
      REQUIRE(k > 0);
      at += static_cast<std::size_t>(k);
    }
    return out;
  }
  bool received(const std::string& payload) {
    for (int i = 0; i < 1000; ++i) {
      {
        std::lock_guard g{mtx};
        for (auto& p : got)
          if (p == payload)
            return true;
      }
      std::this_thread::sleep_for(5ms);
    }
    return false;
  }
};

// A ring pair made here, offered with its two eventfds (the offerer's, the acceptor's).
struct offered_ring {
  std::unique_ptr<ring_mapping> mapping = ring_mapping::create();
  int offerer_efd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  int acceptor_efd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  ~offered_ring() {
    if (view)
      ::munmap(view, 4096);
    ::close(offerer_efd);
    ::close(acceptor_efd);
  }
  std::vector<int> fds() const { return {mapping->memfd(), offerer_efd, acceptor_efd}; }
  // Publishes `bytes` in the direction the acceptor reads; `wake`: as a writer does.
  void publish(const std::string& bytes, bool wake) {
    writer.put(bytes.data(), bytes.size());
    if (writer.publish() && wake) {
      std::uint64_t one = 1;
      REQUIRE(::write(acceptor_efd, &one, sizeof one) == 8);
    }
  }
  // The header of that direction, as the acceptor's reader writes it.
  ring_header& to_acceptor() {
    if (!view) {
      view = ::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, mapping->memfd(), 0);
      REQUIRE(view != MAP_FAILED);
    }
    return *static_cast<ring_header*>(view);
  }
  mproc::detail::ring_writer writer = mapping->writer();
  void* view = nullptr;
};

// The switch as a parent makes it: the offer, the link's ring_on read from the socket, this
// end's ring_on written; then waits until the link reads the ring.
void switch_to_ring(hand_written_peer& p, offered_ring& ring) {
  p.send(offer_of(ring_mapping::ring_size), ring.fds());
  REQUIRE(p.read(6) == frame({0x91, 14}));
  p.send(frame({0x91, 14}));
  for (int i = 0; i < 1000 && !p.l->on_ring(); ++i)
    std::this_thread::sleep_for(5ms);
  REQUIRE(p.l->on_ring());
}

// Why the link closed, once it did.
std::string close_reason(hand_written_peer& p) {
  auto why = p.closed.get_future();
  REQUIRE(why.wait_for(5s) == std::future_status::ready);
  return why.get();
}

} // namespace

TEST_CASE("a ring offer is answered by ring_on on the socket, after which the link writes to the ring") {
  hand_written_peer p;
  offered_ring ring;
  switch_to_ring(p, ring);  // after this end's ring_on, what it writes comes through the ring
  auto in = ring.mapping->reader();
  mproc::wire::buffer hi;
  auto start = mproc::wire::begin_frame(hi);
  hi.write("hi", 2);
  mproc::wire::end_frame(hi, start);
  REQUIRE(p.l->write(std::move(hi)));
  char buf[16];
  auto got = in.get(buf, sizeof buf);
  CHECK(std::string(buf, got.n) == frame({'h', 'i'}));
  // And a frame this end puts in the ring reaches the link's handler.
  ring.publish(frame({'y', 'o'}), true);
  CHECK(p.received("yo"));
}

TEST_CASE("a ring offer of another size is declined: the link stays on its socket and goes on") {
  hand_written_peer p;
  offered_ring ring;
  p.send(offer_of(4096), ring.fds());
  p.send(frame({'o', 'k'}));
  CHECK(p.received("ok"));
  CHECK_FALSE(p.l->on_ring());
  CHECK(p.closed.get_future().wait_for(0s) == std::future_status::timeout);
}

TEST_CASE("a ring offer to an end that takes none (a parent from its child) closes the link") {
  hand_written_peer p{false};
  offered_ring ring;
  p.send(offer_of(ring_mapping::ring_size), ring.fds());
  CHECK_THAT(close_reason(p), Catch::Contains("protocol error"));
  CHECK_FALSE(p.l->on_ring());
}

TEST_CASE("a ring offer whose wake-ups could block the loop is declined: the link goes on") {
  hand_written_peer p;
  offered_ring ring;
  int pipe_fds[2];
  REQUIRE(::pipe2(pipe_fds, O_CLOEXEC) == 0);  // a blocking pipe: a wake-up into it could block
  p.send(offer_of(ring_mapping::ring_size), {ring.mapping->memfd(), pipe_fds[1], ring.acceptor_efd});
  p.send(frame({'o', 'k'}));
  CHECK(p.received("ok"));
  CHECK_FALSE(p.l->on_ring());
  ::close(pipe_fds[0]);
  ::close(pipe_fds[1]);
}

TEST_CASE("a ring offer without its descriptors closes the link with a protocol error") {
  hand_written_peer p;
  p.send(offer_of(ring_mapping::ring_size));
  CHECK_THAT(close_reason(p), Catch::Contains("protocol error"));
}

TEST_CASE("ring_on without a ring closes the link with a protocol error") {
  hand_written_peer p;
  p.send(frame({0x91, 14}));
  CHECK_THAT(close_reason(p), Catch::Contains("ring_on without a ring"));
}

TEST_CASE("an impossible position written into the ring closes the link, not the process") {
  hand_written_peer p;
  offered_ring ring;
  switch_to_ring(p, ring);
  ring.to_acceptor().head.store(std::uint64_t{1} << 40);
  std::uint64_t one = 1;
  REQUIRE(::write(ring.acceptor_efd, &one, sizeof one) == 8);
  CHECK_THAT(close_reason(p), Catch::Contains("impossible"));
}

TEST_CASE("frames published before the other end's socket closed are all delivered, then the close") {
  hand_written_peer p;
  offered_ring ring;
  switch_to_ring(p, ring);
  ring.publish(frame({'f', 'i', 'r', 's', 't'}), true);
  REQUIRE(p.received("first"));
  // The link read it, so its reader was busy: once idle again, it looks at the ring only
  // when woken. Published without waking it, only the socket's end makes it look.
  for (int i = 0; i < 1000 && ring.to_acceptor().reader_idle.load() == 0; ++i)
    std::this_thread::sleep_for(1ms);
  REQUIRE(ring.to_acceptor().reader_idle.load() == 1);
  ring.publish(frame({'e', 'n', 'd'}), false);
  ::shutdown(p.raw, SHUT_RDWR);
  CHECK(close_reason(p) == "connection closed by peer");
  std::lock_guard g{p.mtx};
  CHECK(p.got == std::vector<std::string>{"first", "end"});
}

TEST_CASE("a read that brings ring_on and part of a carrier leaves the carrier to the socket and the rest to the ring") {
  hand_written_peer p;
  offered_ring ring;
  std::vector<int> taken;
  {
    std::lock_guard g{p.mtx};
    p.on_frame = [&](std::string_view payload) {  // as a peer takes an fds frame's descriptors
      if (payload == "take two")
        for (int i = 0; i < 2; ++i)
          if (auto fds = p.l->take_fds(1))
            taken.push_back(fds->at(0));
    };
  }
  p.send(offer_of(ring_mapping::ring_size), ring.fds());
  CHECK(p.read(6) == frame({0x91, 14}));
  // One write: ring_on and the first half of a carrier, with the carrier's descriptor.
  auto carrier = frame({0x91, 8});
  p.send(frame({0x91, 14}) + carrier.substr(0, 3), {ring.offerer_efd});
  p.send(carrier.substr(3));
  p.send(carrier, {ring.acceptor_efd});
  ring.publish(frame({'t', 'a', 'k', 'e', ' ', 't', 'w', 'o'}), true);
  REQUIRE(p.received("take two"));
  std::lock_guard g{p.mtx};
  REQUIRE(taken.size() == 2);
  CHECK(taken[0] >= 0);
  CHECK(taken[1] >= 0);
  for (int fd : taken)
    ::close(fd);
  CHECK(p.closed.get_future().wait_for(0s) == std::future_status::timeout);
}
