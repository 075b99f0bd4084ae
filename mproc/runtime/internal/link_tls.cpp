// A link's encryption (link.hpp, tls.hpp): queued frames are sealed into records a batch at
// a time and the records sent; records read are opened and their frames handed out.
#include "mproc/runtime/internal/link.hpp"

#include <sys/socket.h>
#include <sys/uio.h>

#include <algorithm>
#include <cerrno>

#include "mproc/runtime/internal/tls.hpp"

namespace mproc::detail {

namespace {

// An encrypted link seals at most this much per pass, so its records in memory stay small
// whatever the size of the frames.
constexpr std::size_t seal_batch = std::size_t{256} << 10;
// TLS's largest record: smaller pieces are gathered into one, larger ones sealed in place.
constexpr std::size_t record_size = std::size_t{16} << 10;
// Batches sealed per drain: AES over a 64 MiB frame takes tens of milliseconds, which must
// neither hold the link's lock that long nor keep the loop from its other links. A writer
// thread seals one batch and leaves the rest to the loop, which seals a few per wake-up.
constexpr int batches_per_drain_on_loop = 4;

} // namespace

std::string link::encryption() const {
  std::lock_guard guard{out_mtx_};
  return tls_ ? tls_->description() : std::string{};
}

bool link::drain_tls_locked(released& done) {
  int batches = loop_.in_loop() ? batches_per_drain_on_loop : 1;
  for (;;) {
    if (tls_sent_ == tls_out_.size()) {
      tls_out_.clear();
      tls_sent_ = 0;
      if (out_.empty() || batches-- == 0)
        break;  // the loop goes on while unsent_locked(): callers leave EPOLLOUT set
      if (!seal_some_locked(done))
        return break_locked(EPROTO, done, "protocol error: " + tls_->failure());
    }
    auto sent = ::send(fd_, tls_out_.data() + tls_sent_, tls_out_.size() - tls_sent_,
                       MSG_DONTWAIT | MSG_NOSIGNAL);
    if (sent < 0) {
      if (!would_block(errno))
        return break_locked(errno, done);
      drained_.notify_all();  // what did go out made room
      return true;
    }
    tls_sent_ += static_cast<std::size_t>(sent);
    out_bytes_ -= static_cast<std::size_t>(sent);
  }
  drained_.notify_all();
  return true;
}

// Small pieces (most frames) are gathered into one record: a record per frame would cost an
// AEAD call and 22 bytes each. Every piece taken is sealed before returning, so a frame
// leaves out_ only once its bytes are in tls_out_.
bool link::seal_some_locked(released& done) {
  auto before = tls_out_.size();
  std::size_t taken = 0;
  while (!out_.empty() && taken < seal_batch) {
    auto& front = out_.front();
    iovec iov[max_iov];
    std::size_t n = 0;
    bool whole = pieces(front, out_offset_, iov, n, max_iov);
    std::size_t used = 0;
    for (std::size_t i = 0; i < n && taken < seal_batch; ++i) {
      auto take = std::min(iov[i].iov_len, seal_batch - taken);
      const auto* p = static_cast<const char*>(iov[i].iov_base);
      if (take >= record_size) {
        if (!seal_staged_locked() || !tls_->seal(p, take, tls_out_))
          return false;
      } else {
        tls_stage_.append(p, take);
        if (tls_stage_.size() >= record_size && !seal_staged_locked())
          return false;
      }
      used += take;
      taken += take;
    }
    if (whole && out_offset_ + used == front.size)
      pop_front_locked(done);
    else
      out_offset_ += used;
  }
  if (!seal_staged_locked())
    return false;
  out_bytes_ += tls_out_.size() - before;
  return true;
}

bool link::seal_staged_locked() {
  if (tls_stage_.empty())
    return true;
  bool ok = tls_->seal(tls_stage_.data(), tls_stage_.size(), tls_out_);
  tls_stage_.clear();
  return ok;
}

bool link::read_some_tls() {
  auto* buf = loop_.read_buffer();
  auto n = ::recv(fd_, buf, io_loop::read_buffer_size, MSG_DONTWAIT);
  if (n < 0 && would_block(errno))
    return false;
  if (n <= 0) {
    on_read_end(n);
    return false;
  }
  {
    std::lock_guard guard{out_mtx_};
    if (closed_)
      return false;
    tls_->feed(buf, static_cast<std::size_t>(n));
  }
  return open_tls();
}

bool link::open_tls() {
  for (;;) {
    // The records were copied into the session: the loop's buffer is free for plaintext.
    auto direct = decoder_.pending_payload() >= io_loop::read_buffer_size;
    auto* buf = direct ? decoder_.payload_room() : loop_.read_buffer();
    auto size = direct ? decoder_.pending_payload() : io_loop::read_buffer_size;
    long n = 0;
    bool answer = false;  // the session has records to send back (a key update)
    bool more = false;    // fed bytes not yet opened: one more open is worth its cost
    bool ended = false;   // the peer's close_notify: as the end of the stream
    std::string why;
    {
      std::lock_guard guard{out_mtx_};
      if (closed_)
        return false;
      auto before = tls_out_.size();
      n = tls_->open(buf, size, tls_out_);
      answer = tls_out_.size() != before;
      out_bytes_ += tls_out_.size() - before;
      ended = n < 0 && tls_->peer_closed();
      if (n < 0 && !ended)
        why = "protocol error: " + tls_->failure();
      // Replies a peer asks for (key updates) and never reads must not grow without bound
      // (beyond the one sealed batch tls_out_ may hold besides them).
      if (n >= 0 && tls_out_.size() - tls_sent_ > max_queued_ + 2 * seal_batch)
        why = "protocol error: the peer asks for more key updates than it reads";
      more = n > 0 && tls_->has_input();
    }
    if (ended) {
      on_read_end(0);
      return false;
    }
    if (!why.empty()) {
      close(why);
      return false;
    }
    if (answer)
      want_write();
    if (n == 0) {  // a record not whole yet: its bytes are a sign of life all the same
      if (on_batch_)
        on_batch_();
      return true;
    }
    if (!deliver(buf, static_cast<std::size_t>(n), direct) || !more)
      return !closed();
  }
}

} // namespace mproc::detail
