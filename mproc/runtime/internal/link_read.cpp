// A link's reading side (link.hpp): the loop thread reads in bulk and hands out whole
// frames, with the descriptors that came along kept until a frame claims them.
#include "mproc/runtime/internal/link.hpp"

#include "mproc/runtime/internal/link_ring.hpp"

#include "mproc/runtime/internal/blob_pool.hpp"
#include "mproc/runtime/internal/fd_passing.hpp"

#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <new>
#include <utility>

#include "mproc/runtime/log.hpp"

namespace mproc::detail {

namespace {

// An honest peer leaves at most two frames' descriptors unclaimed (one fds frame read ahead
// of the frame that takes them); more is a peer piling them up.
constexpr std::size_t max_unclaimed_fds = 4 * wire::max_fds_per_frame;

} // namespace

void link::on_readable() {
  read_guarded(&link::read_some);
}

bool link::read_guarded(bool (link::*step)()) {
  // No memory for a frame (a large one under a memory limit, or one that decodes into many
  // values) ends this link, not the node: escaping the loop thread, it would end the process.
  try {
    return (this->*step)();
  } catch (const std::bad_alloc&) {
    close("out of memory for a frame from this peer");
    return false;
  }
}

bool link::read_some() {
  if (tls_)
    return read_some_tls();
  if (ring_reading())
    return read_ring();
  // The rest of a large frame goes straight into the decoder's buffer: one copy fewer.
  auto direct = decoder_.pending_payload() >= io_loop::read_buffer_size;
  auto* buf = direct ? decoder_.payload_room() : loop_.read_buffer();
  auto size = direct ? decoder_.pending_payload() : io_loop::read_buffer_size;
  auto n = receive(buf, size);
  if (n < 0 && would_block(errno))
    return false;
  if (n <= 0) {
    on_read_end(n);
    return false;
  }
  return deliver(buf, static_cast<std::size_t>(n), direct);
}

void link::on_read_end(long n) {
  int err = errno;
  {
    std::lock_guard guard{out_mtx_};
    by_peer_ = true;
  }
  close(n == 0 ? std::string{"connection closed by peer"}
               : std::string{"connection error: "} + std::strerror(err));
}

bool link::deliver(char* buf, std::size_t n, bool direct, bool from_ring) {
  auto self = shared_from_this();  // a frame handler may drop the last other reference
  auto hand_out = [&](std::string_view payload) {
    frames_in_.store(frames_in_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    bytes_in_.store(bytes_in_.load(std::memory_order_relaxed) + wire::frame_header_size
                      + payload.size(),
                    std::memory_order_relaxed);
    if (closed() || (!from_ring && ring_reading()))
      return;  // after ring_on, a carrier read along: its descriptors are what counts
    if (payload.size() <= 7 && on_ring_frame(payload))
      return;
    on_frame_(payload);
  };
  if (direct) {
    decoder_.commit(n, hand_out);
  } else {
    decoder_.feed(buf, n, hand_out);
    if (!from_ring && ring_reading())  // ring_on came: what followed it is carriers
      ring_->carrier_offset = decoder_.unconsumed() % ring_state::carrier_size;
  }
  if (on_batch_)
    on_batch_();
  if (decoder_.failed() && !closed()) {
    close("protocol error: " + decoder_.error());
    return false;
  }
  return !closed();
}

long link::receive(char* buf, std::size_t size) {
  iovec iov{buf, size};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * wire::max_fds_per_frame)];
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  auto n = ::recvmsg(fd_, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
  if (n < 0)
    return n;
  auto fds = received_fds(msg);
  bool lost = (msg.msg_flags & MSG_CTRUNC) != 0;
  if (lost)
    log::warn("descriptors sent to this process were lost (",
              "none free under RLIMIT_NOFILE, or more than a frame may carry): ",
              "the message naming them is dropped");
  if (!fds.empty() || lost) {
    fds_in_count_ += fds.size();
    fds_in_.push_back({std::move(fds), lost});
  }
  if (fds_in_count_ > max_unclaimed_fds || fds_in_.size() > max_unclaimed_fds) {
    // Descriptors piling up that no frame claims: the peer broke the protocol.
    errno = EPROTO;
    return -1;
  }
  return n;
}

std::optional<std::vector<int>> link::take_fds(std::size_t n) {
  if (fds_in_.empty() && ring_reading())
    pull_carried_fds();
  if (fds_in_.empty())
    return std::nullopt;
  auto set = std::move(fds_in_.front());
  fds_in_.pop_front();
  fds_in_count_ -= set.fds.size();
  if (set.lost && set.fds.size() < n)
    set.fds.resize(n, -1);
  if (set.fds.size() != n) {  // the announced count and the set differ: a broken peer
    for (int fd : set.fds)
      if (fd >= 0)
        close_unclaimed(fd);  // a blob segment's reference goes back
    return std::nullopt;
  }
  return std::move(set.fds);
}

void link::drain_and_close(const std::string& reason) {
  while (!closed() && read_guarded(&link::read_some)) {
  }
  // Would-block without EOF: someone else still holds the peer's end (a fork of it).
  close(reason);
}

} // namespace mproc::detail
