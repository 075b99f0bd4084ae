// A pipe end: construction, sending (what the socket does not take goes to the background
// writer), closing, and handing the end to another process. Receiving: pipe_socket_recv.cpp.
#include "mproc/actors/pipe_socket.hpp"

#include "mproc/actors/pipe_flusher.hpp"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "mproc/runtime/blocking.hpp"
#include "mproc/runtime/deadline.hpp"
#include "mproc/runtime/errors.hpp"
#include "mproc/serialization/frame.hpp"

namespace mproc::detail {

pipe_socket::deadline_t pipe_socket::deadline_of(std::optional<millis> timeout) {
  if (!timeout || *timeout >= forever_beyond)
    return std::nullopt;
  return std::chrono::steady_clock::now() + *timeout;
}

void pipe_socket::fail(errc code, const std::string& what) {
  throw error(make_error(code, what), what);
}

pipe_socket::pipe_socket(int fd) : fd_(fd) {}

pipe_socket::pipe_socket(handoff&& from)
  : fd_(from.fd), out_(std::move(from.unsent)), in_(std::move(from.unread)), in_end_(in_.size()) {}

void pipe_socket::resume() {
  std::unique_lock lock{send_mtx_};
  if (out_.empty() || watched_)
    return;
  watched_ = true;
  lock.unlock();
  pipe_flusher::watch(shared_from_this());
}

bool pipe_socket::unwatch_if_idle() {
  std::lock_guard guard{send_mtx_};
  if (out_.empty())
    watched_ = false;
  return out_.empty();
}

pipe_socket::~pipe_socket() {
  if (!given_away_)
    ::close(fd_);
}

void pipe_socket::throw_closed(const char* what) const {
  fail(errc::closed, std::string{what} + (given_away_ ? ": this end was sent to another process"
                                          : lent_     ? ": this end is being sent to another process"
                                                      : ": the pipe is closed"));
}

void pipe_socket::send(const char* data, std::size_t size, std::optional<millis> timeout) {
  if (size > max_frame)
    fail(errc::frame_too_large, "send: " + std::to_string(size) + " bytes exceed a pipe's "
                                  + std::to_string(max_frame) + "-byte limit");
  std::unique_lock lock{send_mtx_};
  auto room = [&] {
    return (out_.size() - out_begin_ < max_pending && !lent_) || closed_ || broken_;
  };
  if (!room())
    will_block();
  if (auto deadline = deadline_of(timeout)) {
    if (!sent_.wait_until(lock, *deadline, room))
      fail(errc::timeout, "send: the other end did not take the earlier messages in time");
  } else {
    sent_.wait(lock, room);
  }
  if (closed_ || broken_)
    throw_closed("send");
  char header[wire::frame_header_size];
  wire::put_frame_length(header, static_cast<std::uint32_t>(size));
  std::size_t done = 0;
  if (out_begin_ == out_.size()) {
    // Nothing waits before this frame: write it straight from the caller's memory.
    iovec iov[2] = {{header, sizeof header}, {const_cast<char*>(data), size}};
    msghdr msg{};
    msg.msg_iov = iov;
    msg.msg_iovlen = 2;
    auto n = ::sendmsg(fd_, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
      broken_ = true;
      throw_closed("send");
    }
    done = static_cast<std::size_t>(std::max<ssize_t>(n, 0));
    if (done == sizeof header + size)
      return;
    clear_out_locked();
  }
  // The rest waits in out_, in order, for the background writer.
  using piece_t = std::pair<const char*, std::size_t>;
  for (auto [piece, length] : {piece_t{header, sizeof header}, piece_t{data, size}}) {
    auto skip = std::min(done, length);
    out_.insert(out_.end(), piece + skip, piece + length);
    done -= skip;
  }
  if (std::exchange(watched_, true))
    return;
  lock.unlock();
  pipe_flusher::watch(shared_from_this());
}

void pipe_socket::clear_out_locked() {
  constexpr std::size_t kept = std::size_t{1} << 20;
  if (out_.capacity() > kept)
    std::vector<char>{}.swap(out_);
  out_.clear();
  out_begin_ = 0;
}

void pipe_socket::write_pending_locked() {
  while (out_begin_ < out_.size() && !broken_) {
    auto n = ::send(fd_, out_.data() + out_begin_, out_.size() - out_begin_,
                    MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK)
        broken_ = true;  // the other end is gone: what waits can never arrive
      break;
    }
    out_begin_ += static_cast<std::size_t>(n);
  }
  if (broken_ || out_begin_ == out_.size()) {
    clear_out_locked();
  } else if (out_begin_ > out_.size() / 2) {
    out_.erase(out_.begin(), out_.begin() + static_cast<std::ptrdiff_t>(out_begin_));
    out_begin_ = 0;
  }
  sent_.notify_all();
}

bool pipe_socket::flush() {
  std::lock_guard guard{send_mtx_};
  if (lent_)
    return false;  // its unsent bytes travel with it: they must not go out from here too
  write_pending_locked();
  bool done = out_.empty();
  if (done && closed_ && !given_away_)
    ::shutdown(fd_, SHUT_WR);  // a close() that waited for its last messages to go out
  return done;
}

bool pipe_socket::wait_flushed(millis timeout) {
  std::unique_lock lock{send_mtx_};
  return sent_.wait_for(lock, capped(timeout), [&] { return out_.empty(); });
}

void pipe_socket::close() {
  std::lock_guard guard{send_mtx_};
  if (closed_.exchange(true) || given_away_)
    return;
  // On its way to another process: the socket is the receiver's too, and a shutdown would
  // end it there. settle_lend shuts it down if the end comes back.
  if (lent_)
    return;
  // Reading ends now: a thread of this process waiting in recv wakes. Writing ends once the
  // unsent bytes are out (the background writer shuts it down then). The descriptor stays
  // open until the end is destroyed, so no waiting call sees it reused.
  ::shutdown(fd_, out_.empty() ? SHUT_RDWR : SHUT_RD);
  sent_.notify_all();
}

pipe_socket::handoff pipe_socket::lend() {
  // Never waits: it runs where waiting is not allowed (the I/O thread encoding a spawn's
  // arguments, an actor). What is buffered either way travels with the end.
  std::unique_lock recv_lock{recv_mtx_, std::try_to_lock};
  if (!recv_lock)
    fail(errc::bad_arguments, "send the pipe end: another thread is receiving on it");
  std::lock_guard guard{send_mtx_};
  if (closed_ || lent_)
    throw_closed("send the pipe end");
  handoff out;
  out.fd = ::fcntl(fd_, F_DUPFD_CLOEXEC, 0);
  if (out.fd < 0)
    fail(errc::closed, std::string{"send the pipe end: "} + std::strerror(errno));
  if (partial_) {  // a frame begun here goes first, header and all
    char header[wire::frame_header_size];
    wire::put_frame_length(header, partial_->length);
    out.unread.assign(header, header + sizeof header);
    out.unread.insert(out.unread.end(), partial_->body.begin(), partial_->body.end());
  }
  out.unread.insert(out.unread.end(), in_.begin() + static_cast<std::ptrdiff_t>(in_begin_),
                    in_.begin() + static_cast<std::ptrdiff_t>(in_end_));
  out.unsent.assign(out_.begin() + static_cast<std::ptrdiff_t>(out_begin_), out_.end());
  lent_ = true;  // nothing is read, written or flushed here until settled
  return out;
}

void pipe_socket::settle_lend(bool sent) {
  bool wake_writer = false;
  {
    std::scoped_lock guard{recv_mtx_, send_mtx_};
    lent_ = false;
    if (!sent && closed_)  // closed while lent, and given back: the close happens now
      ::shutdown(fd_, out_.empty() ? SHUT_RDWR : SHUT_RD);
    if (sent) {
      partial_.reset();
      in_.clear();
      in_begin_ = in_end_ = 0;
      out_.clear();
      out_begin_ = 0;
      given_away_ = true;
      closed_ = true;
      ::close(fd_);
    }
    // The writer left this end out while it was lent: it forgets it now (sent), or waits
    // for its socket again (given back).
    wake_writer = watched_;
    sent_.notify_all();
  }
  if (wake_writer)
    pipe_flusher::watch(shared_from_this());
}

void pipe_socket::unwatch() {
  std::lock_guard guard{send_mtx_};
  watched_ = false;
}

std::size_t pipe_socket::unwatched() {
  std::lock_guard guard{send_mtx_};
  watched_ = false;
  auto dropped = out_.size() - out_begin_;
  if (dropped == 0 || lent_ || given_away_)
    return dropped;
  broken_ = true;
  clear_out_locked();
  ::shutdown(fd_, SHUT_WR);
  sent_.notify_all();
  return dropped;
}

bool pipe_socket::awaits_socket() {
  std::lock_guard guard{send_mtx_};
  return !lent_ && !given_away_;
}

} // namespace mproc::detail
