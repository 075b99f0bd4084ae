// A local link's byte stream in shared memory (link.hpp, ring.hpp).
//
// The switch, one direction at a time, so that no byte is read out of order:
//   parent: [13, size] with a memfd and two eventfds  (socket)
//   child:  maps it, then [14] (socket); everything it writes after goes to the ring
//   parent: reading [14], reads the child's ring from then on; answers [14] (socket) and
//           writes to the ring after it
//   child:  reading [14], reads the parent's ring from then on.
// A frame's descriptors still cross the socket, in a heartbeat frame sent just before the
// frame's first byte enters the ring; the reader takes them from the socket when the fds
// frame that announces them comes out of the ring (they are there by then). The socket's
// end tells the other process's end: what it published is delivered first.
#include "mproc/runtime/internal/link_ring.hpp"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "mproc/runtime/internal/fd_passing.hpp"
#include "mproc/runtime/log.hpp"
#include "mproc/serialization/protocol.hpp"

namespace mproc::detail {

namespace {

// A heartbeat frame ([8]): what carries a frame's descriptors over the socket.
constexpr char carrier[] = {0, 0, 0, 2, static_cast<char>(0x91), 8};

wire::buffer ring_frame(std::initializer_list<unsigned char> payload) {
  wire::buffer buf;
  auto start = wire::begin_frame(buf);
  for (auto b : payload)
    buf.write(reinterpret_cast<const char*>(&b), 1);
  wire::end_frame(buf, start);
  return buf;
}

// A descriptor this end may write without blocking its loop. (Whether it is an eventfd would
// cost a readlink of /proc per descriptor, 1% of the samples of 200 children started at once;
// only the parent offers, and it is mproc.)
bool nonblocking(int fd) {
  int flags = fd < 0 ? -1 : ::fcntl(fd, F_GETFL);
  return flags >= 0 && (flags & O_NONBLOCK) != 0;
}

void signal_efd(int efd) {
  std::uint64_t one = 1;
  [[maybe_unused]] auto n = ::write(efd, &one, sizeof one);  // EAGAIN: it is signalled already
}

} // namespace

link::ring_state::~ring_state() {
  if (own_efd >= 0)
    ::close(own_efd);
  if (peer_efd >= 0)
    ::close(peer_efd);
}

void link::ring_state::wake_peer() const {
  signal_efd(peer_efd);
}

void link::ring_state::wake_self() const {
  signal_efd(own_efd);
}

bool link::ring_reading() const {
  return ring_ && ring_->reading.load(std::memory_order_relaxed);
}

void link::allow_ring() {
  ring_allowed_ = true;
}

bool link::on_ring() const {
  std::lock_guard guard{out_mtx_};
  return ring_ && ring_->writing && ring_->reading.load();
}

std::uint32_t link::read_events() const {
  return ring_reading() ? EPOLLRDHUP : EPOLLIN | EPOLLRDHUP;
}

std::uint32_t link::socket_events_locked() const {
  bool out = ring_ && ring_->writing ? ring_->carrier_waits : unsent_locked();
  return out ? read_events() | EPOLLOUT : read_events();
}

// ---- the switch ------------------------------------------------------------------------

bool link::offer_ring() {
  if (tls_ || ring_ || closed())
    return false;
  auto mapping = ring_mapping::create();
  int own = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  int peer = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  std::vector<int> sent;
  if (mapping && own >= 0 && peer >= 0)
    for (int fd : {mapping->memfd(), own, peer})
      sent.push_back(::fcntl(fd, F_DUPFD_CLOEXEC, 0));
  if (sent.size() != 3 || sent[0] < 0 || sent[1] < 0 || sent[2] < 0) {
    log::warn("a local link stays on its socket: no shared memory (", std::strerror(errno), ")");
    std::vector<int> made{own, peer};
    close_fds(sent);
    close_fds(made);
    return false;
  }
  install_ring(std::move(mapping), own, peer);
  auto size = static_cast<std::uint32_t>(ring_mapping::ring_size);
  auto offer = ring_frame({0x92, wire::ring_kind, 0xce, static_cast<unsigned char>(size >> 24),
                           static_cast<unsigned char>(size >> 16),
                           static_cast<unsigned char>(size >> 8), static_cast<unsigned char>(size)});
  auto bytes = offer.size();
  return enqueue({std::move(offer), {}, {}, bytes, std::move(sent), 0}, flow::control)
         == written::queued;
}

bool link::on_ring_frame(std::string_view p) {
  auto byte = [&](std::size_t i) { return static_cast<unsigned char>(p[i]); };
  if (p.size() == 7 && byte(0) == 0x92 && byte(1) == wire::ring_kind && byte(2) == 0xce) {
    accept_ring(wire::get_frame_length(p.data() + 3));
    return true;
  }
  if (p.size() == 2 && byte(0) == 0x91 && byte(1) == wire::ring_on_kind) {
    start_reading_ring();
    return true;
  }
  return false;
}

void link::accept_ring(std::uint32_t size) {
  auto fds = take_fds(3);
  if (!fds || ring_ || tls_ || !ring_allowed_) {
    if (fds)
      close_fds(*fds);
    close("protocol error: a ring offer where none may come, twice, or without its descriptors");
    return;
  }
  // Descriptors lost on the way (-1: this process had none free), or ones a write could
  // block on (this end writes both eventfds: the other's to wake it, its own to come back
  // for more). Against mistakes, not malice: the other end shares the eventfds' flags and
  // runs as the same user anyway.
  auto& f = *fds;
  bool usable = size == ring_mapping::ring_size && f[0] >= 0 && nonblocking(f[1])
                && nonblocking(f[2]);
  auto mapping = usable ? ring_mapping::map(std::exchange(f[0], -1)) : nullptr;
  if (!mapping) {  // declined: the link stays on its socket
    close_fds(f);
    log::warn("a local link stays on its socket: the offered shared memory is unusable");
    return;
  }
  install_ring(std::move(mapping), f[2], f[1]);
  switch_writes();
}

void link::install_ring(std::unique_ptr<ring_mapping> mapping, int own_efd, int peer_efd) {
  auto state = std::make_unique<ring_state>();
  state->out = mapping->writer();
  state->in = mapping->reader();
  state->mapping = std::move(mapping);
  state->own_efd = own_efd;
  state->peer_efd = peer_efd;
  {
    std::lock_guard guard{out_mtx_};  // writers read ring_ under it
    ring_ = std::move(state);
  }
  watch_ring();
}

void link::start_reading_ring() {
  if (!ring_ || ring_->reading) {
    close("protocol error: ring_on without a ring");
    return;
  }
  ring_->reading = true;
  // The socket's bytes after this frame are carriers, read aside from now on: the read in
  // progress stops here, and where it stopped inside a carrier is kept.
  decoder_.stop_after_frame();
  if (!ring_->switch_queued)
    switch_writes();  // the offerer answers
  {
    std::lock_guard guard{out_mtx_};
    loop_.modify(token_, fd_, socket_events_locked());
  }
  // The other end may have published before this end looked, and woken it for nothing.
  ring_->wake_self();
}

void link::switch_writes() {
  ring_->switch_queued = true;
  auto on = ring_frame({0x91, wire::ring_on_kind});
  auto bytes = on.size();
  pending frame{std::move(on), {}, {}, bytes};
  frame.switches = true;
  enqueue(std::move(frame), flow::control);
}

void link::watch_ring() {
  ring_->token = loop_.add(
    ring_->own_efd, EPOLLIN | EPOLLET,
    [self = weak_from_this()](std::uint32_t) {
      if (auto l = self.lock())
        l->on_ring_event();
    },
    true, ring_.get());
}

void link::unwatch_ring() {
  if (ring_ && ring_->token != 0) {
    loop_.remove(ring_->token, ring_->own_efd);
    ring_->token = 0;
  }
}

// The other end published, or made room for what waits here.
void link::on_ring_event() {
  {
    released done;
    std::lock_guard guard{out_mtx_};
    if (!closed_ && !broken_ && ring_->writing && !out_.empty())
      drain_ring_locked(done);
  }
  if (ring_reading() && !closed())
    read_guarded(&link::read_ring);
}

// ---- writing ---------------------------------------------------------------------------

void link::flush_later_locked() {
  if (!ring_ || !ring_->writing) {
    want_write();
    return;
  }
  ring_->wake_self();  // on_ring_event drains the queue
  loop_.wanted();
}

link::carried link::carry_fds_locked(std::vector<int>& fds, released& done) {
  static_assert(sizeof carrier == ring_state::carrier_size);
  iovec iov{const_cast<char*>(carrier), sizeof carrier};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * wire::max_fds_per_frame)];
  attach_fds(msg, control, fds);
  auto sent = ::sendmsg(fd_, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
  if (sent == static_cast<long>(sizeof carrier)) {
    close_fds(fds);  // in flight now: the receiver gets its own copies
    return carried::sent;
  }
  if (sent < 0 && would_block(errno))
    return carried::later;
  if (sent < 0 && (errno == EMFILE || errno == ENFILE || errno == ETOOMANYREFS)) {
    log::warn("a message carrying descriptors was dropped: ", std::strerror(errno));
    return carried::dropped;
  }
  // A part of six bytes cannot be sent alone on a Unix stream socket; were it, the stream
  // the other end reads aside would be torn.
  break_locked(sent < 0 ? errno : EPROTO, done);
  return carried::broken;
}

bool link::drain_ring_locked(released& done) {
  auto& r = *ring_;
  r.carrier_waits = false;
  bool wake = false;
  while (!out_.empty()) {
    auto& f = out_.front();
    if (!f.fds.empty()) {
      auto c = carry_fds_locked(f.fds, done);
      if (c == carried::broken)
        return false;
      if (c == carried::dropped) {
        pop_front_locked(done);
        continue;
      }
      if (c == carried::later) {
        r.carrier_waits = true;
        want_write();
        break;
      }
      backlog_.sent(std::exchange(f.weight, 0), stream_sent_ + f.size - out_offset_);
    }
    iovec iov[max_iov];
    std::size_t n = 0;
    pieces(f, out_offset_, iov, n, max_iov);  // a frame of more pieces: the rest next turn
    bool full = false;
    for (std::size_t i = 0; i < n && !full; ++i) {
      auto took = r.out.put(static_cast<const char*>(iov[i].iov_base), iov[i].iov_len);
      out_offset_ += took;
      stream_sent_ += took;
      full = took < iov[i].iov_len;
    }
    if (out_offset_ == f.size)
      pop_front_locked(done);
    if (full) {
      wake |= r.out.publish();
      if (r.out.wait_for_room()) {
        loop_.wanted();  // the reader wakes this end's loop as it makes room
        break;
      }
    }
  }
  if (r.out.publish() || wake)
    r.wake_peer();
  drained_.notify_all();
  return true;
}

// ---- reading ---------------------------------------------------------------------------

bool link::read_ring() {
  auto& in = ring_->in;
  in.busy();
  auto direct = decoder_.pending_payload() >= io_loop::read_buffer_size;
  auto* buf = direct ? decoder_.payload_room() : loop_.read_buffer();
  auto size = direct ? decoder_.pending_payload() : io_loop::read_buffer_size;
  auto got = in.get(buf, size);
  if (got.broken) {
    close("protocol error: the other end's ring position is impossible");
    return false;
  }
  if (got.wake_writer)
    ring_->wake_peer();
  if (got.n > 0 && !deliver(buf, got.n, direct, true))
    return false;
  // One read per turn, as from a socket: the actors it fed run before the next, so a writer
  // that keeps up does not pile its messages up in their mailboxes. Awake still: the loop
  // looks again before it waits (what is there then is its next batch), and says only then
  // that this end sleeps.
  loop_.look_again(ring_->token);
  return in.more();
}

void link::pull_carried_fds() {
  // One carrier per read: the socket hands over one sendmsg's descriptors at a time, and
  // reading no further leaves the next ones for the frames that announce them.
  char bytes[sizeof carrier];
  while (fds_in_.empty()) {
    auto n = receive(bytes, sizeof carrier - ring_->carrier_offset);
    if (n <= 0)
      break;
    ring_->carrier_offset = (ring_->carrier_offset + static_cast<std::size_t>(n)) % sizeof carrier;
  }
}

} // namespace mproc::detail
