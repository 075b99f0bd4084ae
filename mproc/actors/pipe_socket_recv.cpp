// A pipe end's receiving side: frames read from the socket into a buffer, waits that spin
// before they sleep, and timed reads that keep a frame begun (pipe_socket.hpp).
#include "mproc/actors/pipe_socket.hpp"

#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "mproc/runtime/blocking.hpp"
#include "mproc/runtime/deadline.hpp"
#include "mproc/serialization/frame.hpp"

namespace mproc::detail {

namespace {

using clock_type = std::chrono::steady_clock;
using deadline_t = std::optional<clock_type::time_point>;

constexpr std::size_t read_chunk = 64 * 1024;
constexpr std::size_t grow_step = std::size_t{16} << 20;

// Waits for `events` on `fd` until `deadline`; false on timeout. POLLHUP/POLLERR count as
// ready: the read or write that follows reports them.
bool wait_for(int fd, short events, deadline_t deadline) {
  for (;;) {
    int ms = deadline ? poll_ms(*deadline) : -1;
    if (ms != 0)
      will_block();  // once a turn: later calls cost a thread-local read
    pollfd p{fd, events, 0};
    int n = ::poll(&p, 1, ms);
    if (n > 0)
      return true;
    if (n == 0 && clock_type::now() >= *deadline)
      return false;
    if (n == 0)
      continue;  // poll's turn of a longer wait
    if (errno != EINTR)
      return true;  // the I/O call reports the error
  }
}

bool would_block() {
  return errno == EAGAIN || errno == EWOULDBLOCK;
}

} // namespace

// A whole frame, or a header announcing more than max_frame (recv fails at once on it: a
// poll that waited for the rest would wait for bytes that may never come).
bool pipe_socket::frame_buffered() const {
  auto have = in_end_ - in_begin_;
  if (have < wire::frame_header_size)
    return false;
  auto length = wire::get_frame_length(in_.data() + in_begin_);
  return length > max_frame || have - wire::frame_header_size >= length;
}

// A reader whose last waits ended within spin_gauge::limit polls that long before it sleeps:
// when the writer answers at once (a round trip), neither side pays a wake-up, which costs
// this kind of host more time and CPU than the spin (docs/architecture.md, "Patterns").
bool pipe_socket::wait_readable(deadline_t deadline) {
  auto t0 = clock_type::now();
  if (deadline && *deadline <= t0)
    return wait_for(fd_, POLLIN, deadline);  // a try: one poll, and nothing learnt
  will_block();  // an actor on a loop thread hands the loop over before it spins, too
  auto readable = [this] {  // data, EOF or an error: the read that follows reports it
    char c;
    return ::recv(fd_, &c, 1, MSG_PEEK | MSG_DONTWAIT) >= 0 || (!would_block() && errno != EINTR);
  };
  bool ready = (arrivals_.worth_spinning()
                && spin_until(readable, deadline.value_or(clock_type::time_point::max()), 8))
               || wait_for(fd_, POLLIN, deadline);
  auto waited = clock_type::now() - t0;
  if (ready)
    arrivals_.observe(waited);
  else
    arrivals_.timed_out(waited);
  return ready;
}

bool pipe_socket::fill(deadline_t deadline) {
  if (in_begin_ == in_end_) {
    in_begin_ = in_end_ = 0;
  } else if (in_begin_ > 0) {  // a partial frame: moved to the front, to read behind it
    std::memmove(in_.data(), in_.data() + in_begin_, in_end_ - in_begin_);
    in_end_ -= in_begin_;
    in_begin_ = 0;
  }
  if (in_.size() < in_end_ + read_chunk)
    in_.resize(in_end_ + read_chunk);  // zeroed once, when the buffer grows
  auto* at = in_.data() + in_end_;
  auto room = in_.size() - in_end_;
  ssize_t n;
  if (!deadline && !arrivals_.worth_spinning()) {
    auto t0 = clock_type::now();
    will_block();
    n = ::recv(fd_, at, room, 0);  // one blocking read, as a raw socket would
    int read_errno = errno;
    arrivals_.observe(clock_type::now() - t0);
    errno = read_errno;
  } else {
    n = ::recv(fd_, at, room, MSG_DONTWAIT);
    if (n < 0 && would_block()) {
      if (!wait_readable(deadline))
        fail(errc::empty, "recv: nothing arrived in time");
      n = ::recv(fd_, at, room, MSG_DONTWAIT);
    }
  }
  if (n > 0) {
    in_end_ += static_cast<std::size_t>(n);
    return true;
  }
  if (n < 0 && (would_block() || errno == EINTR))
    return true;  // woken for nothing: wait again
  return false;   // EOF, reset, or shut down by close()
}

std::unique_lock<std::timed_mutex> pipe_socket::lock_recv(deadline_t deadline) {
  // Another thread may wait in recv() for ever with the lock: a timed call waits for it
  // only until its own deadline.
  std::unique_lock lock{recv_mtx_, std::defer_lock};
  if (!deadline) {
    will_block();
    lock.lock();
  } else
    lock.try_lock_until(*deadline);
  return lock;
}

bytes pipe_socket::recv(std::optional<millis> timeout) {
  auto deadline = deadline_of(timeout);
  auto guard = lock_recv(deadline);
  if (!guard)
    fail(errc::empty, "recv: another thread was receiving until the time ran out");
  if (closed_ || lent_)
    throw_closed("recv");
  // A message this process has no memory for cannot be skipped (its bytes are still coming,
  // the header is taken): the stream would be out of step for every later recv.
  try {
    return recv_frame(deadline);
  } catch (const std::bad_alloc&) {
    close();
    fail(errc::closed, "recv: no memory for the message that arrived; the pipe is closed");
  }
}

bytes pipe_socket::recv_frame(deadline_t deadline) {
  bytes out;
  std::uint32_t length = 0;
  if (partial_) {  // the frame an earlier recv's time ran out in
    out = std::move(partial_->body);
    length = partial_->length;
    partial_.reset();
  } else {
    length = take_header(deadline);
    auto buffered = std::min<std::size_t>(length, in_end_ - in_begin_);
    out.reserve(length);  // address space only: pages are touched as the data comes
    wire::advise_huge_pages(out.data(), length);
    out.insert(out.end(), in_.data() + in_begin_, in_.data() + in_begin_ + buffered);
    in_begin_ += buffered;
  }
  // The rest is received straight into the message, grown as it comes (an announced length
  // commits no memory by itself). close() from another thread ends the wait (shutdown wakes
  // the recv). A deadline that passes keeps the part received aside (partial_): the next
  // recv goes on from there.
  std::size_t at = out.size();
  while (at < length) {
    if (out.size() == at)
      out.resize(std::min<std::size_t>(length, at + grow_step));
    if (!deadline)
      will_block();
    auto n = ::recv(fd_, out.data() + at, out.size() - at, deadline ? MSG_DONTWAIT : 0);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (!wait_readable(deadline)) {
        out.resize(at);
        partial_ = partial_frame{length, std::move(out)};
        fail(errc::empty, "recv: a message of " + std::to_string(length)
                            + " bytes was still arriving when the time ran out");
      }
      continue;
    }
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0) {
      eof_ = true;
      throw_closed("recv");  // the writer died mid-frame: what it sent is incomplete
    }
    at += static_cast<std::size_t>(n);
  }
  return out;
}

std::uint32_t pipe_socket::take_header(deadline_t deadline) {
  while (in_end_ - in_begin_ < wire::frame_header_size)
    if (eof_ || !fill(deadline)) {
      eof_ = true;
      throw_closed("recv");
    }
  auto length = wire::get_frame_length(in_.data() + in_begin_);
  if (length > max_frame) {
    close();
    fail(errc::bad_message, "recv: the other end announced a frame of " + std::to_string(length)
                              + " bytes, above the limit of " + std::to_string(max_frame));
  }
  in_begin_ += wire::frame_header_size;
  return length;
}

bool pipe_socket::poll(std::optional<millis> timeout) {
  auto deadline = deadline_of(timeout);
  auto guard = lock_recv(deadline);
  if (!guard)
    return false;  // another thread is receiving: what comes is its
  if (closed_ || lent_)
    throw_closed("poll");
  return frame_buffered() || eof_ || wait_readable(deadline);
}

} // namespace mproc::detail
