// A link (link.hpp): its life, its counters, and the writing side: frames written from any
// thread, queued behind one another and flushed by the loop; reading is in link_read.cpp,
// encryption in link_tls.cpp.
#include "mproc/runtime/internal/link.hpp"

#include "mproc/runtime/internal/link_ring.hpp"  // link destroys its ring

#include "mproc/runtime/internal/blob_pool.hpp"
#include "mproc/runtime/internal/fd_passing.hpp"
#include "mproc/runtime/internal/tcp.hpp"
#include "mproc/runtime/internal/tls.hpp"  // link destroys its session

#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "mproc/runtime/log.hpp"
#include "mproc/runtime/spin.hpp"

namespace mproc::detail {

namespace {

thread_local std::optional<std::chrono::steady_clock::time_point> this_thread_deadline;

} // namespace

bool link::would_block(int err) {
  return err == EAGAIN || err == EWOULDBLOCK || err == EINTR;
}

void link::want_write() {
  loop_.modify(token_, fd_, read_events() | EPOLLOUT);
}

link::write_deadline::write_deadline(std::chrono::steady_clock::time_point deadline)
  : previous_(this_thread_deadline) {
  this_thread_deadline = deadline;
}

link::write_deadline::~write_deadline() {
  this_thread_deadline = previous_;
}

link::link(io_loop& loop, int fd, std::uint32_t max_frame, std::size_t max_queued)
  : link(loop, fd, max_frame, max_queued, nullptr) {}

link::link(io_loop& loop, int fd, std::uint32_t max_frame, std::size_t max_queued,
           std::unique_ptr<tls::session> tls)
  : loop_(loop), fd_(fd), decoder_(max_frame), max_queued_(max_queued), tls_(std::move(tls)) {}

link::~link() {
  std::lock_guard guard{out_mtx_};
  if (!closed_)
    ::close(fd_);
  for (auto& f : out_)
    close_fds(f.fds);
  for (auto& set : fds_in_)
    for (int fd : set.fds)
      close_unclaimed(fd);  // a blob segment's reference goes back
}

void link::open(frame_handler on_frame, close_handler on_close, batch_handler on_batch) {
  on_frame_ = std::move(on_frame);
  on_close_ = std::move(on_close);
  on_batch_ = std::move(on_batch);
  std::lock_guard guard{out_mtx_};
  // A caller leading the loop may read frames (its reply among them): callers_may_run.
  token_ = loop_.add(
    fd_, read_events(),
    [self = weak_from_this()](std::uint32_t events) {
      if (auto l = self.lock())
        l->on_event(events);
    },
    true);
  if (unsent_locked())
    want_write();
  if (tls_ && tls_->has_input())  // records that came with the handshake's last bytes
    loop_.post([self = weak_from_this()] {
      if (auto l = self.lock())
        l->read_guarded(&link::open_tls);
    });
}

bool link::closed() const {
  return closed_.load();
}

link::counters link::count() const {
  counters c;
  c.frames_in = frames_in_.load(std::memory_order_relaxed);
  c.bytes_in = bytes_in_.load(std::memory_order_relaxed);
  std::lock_guard guard{out_mtx_};
  c.writes_out = writes_out_;
  c.bytes_out = bytes_out_;
  c.backlog = out_bytes_;
  return c;
}

std::string link::remote_address() const {
  sockaddr_storage addr{};
  socklen_t len = sizeof addr;
  {
    std::lock_guard guard{out_mtx_};
    if (closed_ || ::getpeername(fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0)
      return {};
  }
  if (addr.ss_family != AF_INET && addr.ss_family != AF_INET6)
    return {};
  return endpoint_of(addr).text();
}

bool link::closed_by_peer() const {
  std::lock_guard guard{out_mtx_};
  return by_peer_;
}

bool link::write(wire::buffer&& frame, flow kind) {
  auto size = frame.size();
  return enqueue({std::move(frame), {}, {}, size}, kind) == written::queued;
}

link::written link::write(wire::frame_out&& frame, flow kind) {
  // The whole buffer (frames before the ended one included) and every borrowed span.
  auto total = frame.start + wire::frame_header_size + frame.payload_size();
  auto weight = frame.fds.empty() ? 0 : weight_of(frame.fds);
  return enqueue({std::move(frame.buf), std::move(frame.borrowed), std::move(frame.keep), total,
                  std::exchange(frame.fds, {}), weight},
                 kind);
}

void link::refresh_backlog_locked() {
  if (!backlog_.in_flight())
    return;
  auto unread = unread_by_peer(fd_) + (ring_ && ring_->writing ? ring_->out.unread() : 0);
  backlog_.read_up_to(stream_sent_ - std::min<std::uint64_t>(unread, stream_sent_));
}

bool link::wait_for_room(std::unique_lock<std::mutex>& guard,
                         std::optional<std::chrono::steady_clock::time_point> deadline) {
  using namespace std::chrono;
  refresh_backlog_locked();
  if (room_locked())
    return true;
  io_loop::will_block();  // the loop drains the link
  // Sending wakes this wait; the other end reading what descriptors came with does not, so
  // while any weigh on the bound (queued: they may go out and be read meanwhile) it looks
  // again now and then (50 us, doubling to 2 ms).
  auto poll = microseconds{50};
  for (;;) {
    auto until = deadline.value_or(steady_clock::time_point::max());
    if (backlog_.total() > 0)
      until = std::min(until, steady_clock::now() + poll);
    if (until == steady_clock::time_point::max())
      drained_.wait(guard, [this] { return room_locked() || backlog_.total() > 0; });
    else
      drained_.wait_until(guard, until, [this] { return room_locked(); });
    refresh_backlog_locked();
    if (room_locked())
      return true;
    if (deadline && steady_clock::now() >= *deadline)
      return false;
    poll = std::min(poll * 2, microseconds{2000});
  }
}

link::written link::enqueue(pending&& frame, flow kind) {
  released done;  // declared first: released after the lock (see `released`)
  std::unique_lock guard{out_mtx_};
  bool never_wait =
    this_thread_deadline && *this_thread_deadline == std::chrono::steady_clock::time_point::min();
  if (frame.weight > 0)
    refresh_backlog_locked();  // also keeps the list of those sent short when nobody waits
  if (kind == flow::data && !loop_.in_loop() && !never_wait && !room_locked()
      && !wait_for_room(guard, this_thread_deadline)) {
    close_fds(frame.fds);
    return written::no_room;
  }
  if (closed_ || broken_) {
    close_fds(frame.fds);
    return written::closed;
  }
  bool was_idle = !unsent_locked();
  out_bytes_ += frame.size;
  backlog_.queued(frame.weight);
  ++writes_out_;
  bytes_out_ += frame.size;
  if (!was_idle && join_tail_locked(frame))
    return written::queued;  // the loop is flushing; it takes these bytes along
  out_.push_back(std::move(frame));
  if (!was_idle)
    return written::queued;  // the loop is flushing; it takes this frame along
  auto now = std::chrono::steady_clock::now();
  if (token_ != 0 && now - last_direct_ < burst_gap) {
    // A burst: one syscall per frame would cap it at the syscall rate. The loop thread
    // flushes what gathers meanwhile in one sendmsg. A lone frame (a request, a reply) still
    // goes out at once. Into a ring the same, so that the reader takes what gathered in one
    // read rather than a frame or two per loop turn.
    flush_later_locked();
    return written::queued;
  }
  if (!drain_locked(done))
    return written::closed;
  // Timed from the write's end, so that a sender's own pace counts, not how long sendmsg
  // takes; but on one CPU sendmsg may also run the reader it woke (and its answer) before it
  // returns, and a request sent right after that reply would pass for a burst, left to the
  // loop: timed from the start there (pinned pingpong 12.7-13.0 -> 11.4-11.8 µs).
  last_direct_ = more_than_one_cpu() ? std::chrono::steady_clock::now() : now;
  if (unsent_locked() && token_ != 0)
    want_write();
  return written::queued;
}

// A small frame queued behind others joins the last queued buffer instead of being a piece
// of its own: a flush then writes thousands of small frames per sendmsg instead of max_iov,
// and the frame's buffer is freed by the thread that made it, not by the loop thread.
// Only frames that are bytes alone join (no borrowed payload, nothing kept, no descriptors),
// and only bytes alone are joined, so a frame's order, its descriptors' first byte and what
// a borrowed payload keeps alive are as before.
bool link::join_tail_locked(pending& frame) {
  auto plain = [](const pending& f) {
    return f.borrowed.empty() && !f.keep && f.fds.empty() && !f.switches;
  };
  if (out_.empty() || !plain(frame) || frame.size > join_max_frame)
    return false;
  auto& tail = out_.back();
  if (!plain(tail) || tail.size + frame.size > join_max_buffer)
    return false;
  tail.buf.write(frame.buf.data(), frame.buf.size());
  tail.size += frame.size;
  return true;
}

bool link::drain_locked(released& done) {
  if (tls_)
    return drain_tls_locked(done);
  while (!out_.empty()) {
    if (ring_ && ring_->writing)
      return drain_ring_locked(done);
    iovec iov[max_iov];
    std::size_t n = 0;
    for (auto i = out_.begin(); i != out_.end() && n < max_iov; ++i) {
      // Descriptors go with a write's first byte: a frame carrying some starts a write.
      if (i != out_.begin() && !i->fds.empty())
        break;
      if (!pieces(*i, i == out_.begin() ? out_offset_ : 0, iov, n, max_iov))
        break;  // the rest of this frame goes in the next sendmsg, before the next frame
      if (i->switches)
        break;  // what follows goes to the ring
    }
    msghdr msg{};
    msg.msg_iov = iov;
    msg.msg_iovlen = n;
    auto& fds = out_.front().fds;
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * wire::max_fds_per_frame)];
    attach_fds(msg, control, fds);
    auto sent = ::sendmsg(fd_, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (sent > 0) {
      close_fds(fds);  // in flight now: the receiver gets its own copies
      auto& front = out_.front();
      backlog_.sent(std::exchange(front.weight, 0), stream_sent_ + front.size - out_offset_);
      stream_sent_ += static_cast<std::uint64_t>(sent);
    }
    if (sent < 0) {
      if (would_block(errno)) {
        drained_.notify_all();  // what did go out made room
        return true;
      }
      if (!fds.empty() && (errno == EMFILE || errno == ENFILE || errno == ETOOMANYREFS)) {
        // The descriptors cannot go (too many in flight or open): only this frame is lost,
        // nothing of it was written, so the link goes on. Its pipe ends close here.
        log::warn("a message carrying descriptors was dropped: ", std::strerror(errno));
        pop_front_locked(done);
        continue;
      }
      return break_locked(errno, done);
    }
    auto left = static_cast<std::size_t>(sent);
    while (left > 0) {
      auto rest = out_.front().size - out_offset_;
      if (left < rest) {
        out_offset_ += left;
        break;
      }
      left -= rest;
      if (out_.front().switches)
        ring_->writing = true;
      pop_front_locked(done);
    }
  }
  drained_.notify_all();
  return true;
}

// EPIPE, ECONNRESET, ENOBUFS...: nothing more goes out. The loop closes the link, which
// settles everything pending on it; the reader may well have seen the end first.
bool link::break_locked(int err, released& done, std::string why) {
  broken_ = true;
  // The other end is gone (a child killed while this node wrote to it): its exit status
  // is the story, as when the reader sees the end first, not a protocol violation.
  if (err == EPIPE || err == ECONNRESET)
    by_peer_ = true;
  for (auto& f : out_) {
    if (f.keep)
      done.push_back(std::move(f.keep));
    close_fds(f.fds);
  }
  out_.clear();
  out_bytes_ = 0;
  backlog_.clear();
  out_offset_ = 0;
  tls_out_.clear();
  tls_sent_ = 0;
  drained_.notify_all();
  if (why.empty())
    why = std::string{"write failed: "} + std::strerror(err);
  loop_.post([self = weak_from_this(), why = std::move(why)] {
    if (auto l = self.lock())
      l->close(why);
  });
  return false;
}

bool link::pieces(const pending& frame, std::size_t skip, iovec* iov, std::size_t& n,
                  std::size_t max) {
  auto add = [&](const char* data, std::size_t size) {
    if (skip >= size) {
      skip -= size;
      return true;
    }
    if (n == max)
      return false;
    iov[n].iov_base = const_cast<char*>(data + skip);
    iov[n].iov_len = size - skip;
    skip = 0;
    ++n;
    return true;
  };
  std::size_t at = 0;
  for (const auto& span : frame.borrowed) {
    if (!add(frame.buf.data() + at, span.at - at) || !add(span.data, span.size))
      return false;
    at = span.at;
  }
  return add(frame.buf.data() + at, frame.buf.size() - at);
}

void link::pop_front_locked(released& done) {
  close_fds(out_.front().fds);  // only a dropped frame still has them
  out_bytes_ -= out_.front().size;
  backlog_.dropped(out_.front().weight);
  if (out_.front().keep)  // most frames keep nothing: no vector to grow for them
    done.push_back(std::move(out_.front().keep));
  out_.pop_front();
  out_offset_ = 0;
}

void link::on_event(std::uint32_t events) {
  if (events & EPOLLOUT)
    on_writable();
  constexpr std::uint32_t ended = EPOLLRDHUP | EPOLLHUP | EPOLLERR;
  if (ring_reading()) {  // the socket brings nothing to read but the other end's end
    if (events & ended) {
      while (!closed() && read_guarded(&link::read_ring)) {  // what it published first
      }
      if (!closed())
        on_read_end(0);
    }
    return;
  }
  if (events & (EPOLLIN | ended))
    on_readable();
}

void link::on_writable() {
  released done;
  std::lock_guard guard{out_mtx_};
  if (closed_)
    return;
  drain_locked(done);
  if (auto events = socket_events_locked(); !(events & EPOLLOUT))
    loop_.modify(token_, fd_, events);
}

void link::close(const std::string& reason) {
  std::deque<pending> dropped;  // released after the lock, as in drain_locked
  {
    std::lock_guard guard{out_mtx_};
    if (closed_)
      return;
    closed_ = true;
    if (token_ != 0)
      loop_.remove(token_, fd_);
    // Its descriptors and mapping go now: an ended child's link is kept a while (mproc ps).
    unwatch_ring();
    ring_.reset();
    ::close(fd_);
    dropped.swap(out_);
    for (auto& f : dropped)
      close_fds(f.fds);
    out_bytes_ = 0;
    backlog_.clear();
    drained_.notify_all();
  }
  // Settling a peer runs users' code (functors attached to its proxies, on_failed): not on
  // a caller that leads the loop and may hold the user's locks (io_loop::on_loop_thread).
  if (auto handler = std::move(on_close_))
    loop_.on_loop_thread([handler = std::move(handler), reason]() { handler(reason); });
}

bool link::flush(std::optional<std::chrono::milliseconds> timeout) {
  std::unique_lock lock{out_mtx_};
  auto drained = [this] { return !unsent_locked() || closed_ || broken_; };
  if (!drained())
    io_loop::will_block();
  if (timeout)
    drained_.wait_for(lock, *timeout, drained);
  else
    drained_.wait(lock, drained);
  return !unsent_locked() && !closed_ && !broken_;
}

} // namespace mproc::detail
