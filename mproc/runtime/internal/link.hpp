// A link: one connected stream socket (socketpair end or TCP) carrying frames.
//
// Writing: any thread. A frame is sent straight from the caller's thread when nothing is
// queued and the previous direct send is not a few microseconds old, which keeps request
// latency at one syscall; frames of a burst, and what the socket does not take, are queued
// and flushed by the loop thread, many frames per sendmsg. Frames never interleave.
// Backpressure: a writer of data frames on any thread but the loop's waits while the link
// has `max_queued` bytes or more unsent, the files of the descriptors it sent and the other
// end has not read yet counted in (a reader that stopped reading bounds the writer's memory
// to that plus one frame per writing thread). Control frames and the loop's own
// frames are always queued: they are small, and the loop must never wait for itself.
// Reading: the loop thread reads in bulk and hands out whole frames.
// Shared memory (a local link, link_ring.cpp): once both ends agreed, the byte stream goes
// through a ring pair in a memfd (ring.hpp) instead of the socket, which then carries only
// descriptors and the end of the other process.
// Encrypted (a TCP link, tls.hpp): frames are sealed into TLS records a batch at a time as
// they leave the queue, and records are opened as they arrive; the session is used under
// out_mtx_ from both sides, since OpenSSL's state is shared between them.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "mproc/runtime/internal/descriptor_backlog.hpp"
#include "mproc/runtime/internal/io_loop.hpp"
#include "mproc/serialization/codec.hpp"
#include "mproc/serialization/envelope.hpp"
#include "mproc/serialization/frame.hpp"

struct iovec;  // <sys/uio.h>, for the private pieces(): kept out of this header's includes

namespace mproc::detail {

namespace tls {
class session;
}
class ring_mapping;

class link : public std::enable_shared_from_this<link> {
public:
  using frame_handler = std::function<void(std::string_view payload)>;
  using close_handler = std::function<void(const std::string& reason)>;
  using batch_handler = std::function<void()>;

  // Takes ownership of `fd`, a connected stream socket, and of `tls`, a session whose
  // handshake is done (nothing: the link is in clear).
  link(io_loop& loop, int fd, std::uint32_t max_frame,
       std::size_t max_queued = std::size_t{16} << 20);
  link(io_loop& loop, int fd, std::uint32_t max_frame, std::size_t max_queued,
       std::unique_ptr<tls::session> tls);
  ~link();
  link(const link&) = delete;
  link& operator=(const link&) = delete;

  // Loop thread: starts reading. on_close runs once, on the loop thread; on_batch, if set,
  // after the frames of each read were handed out.
  void open(frame_handler on_frame, close_handler on_close, batch_handler on_batch = {});

  enum class flow { control, data };

  // While one is alive, data frames written by this thread wait for room only until
  // `deadline`, then are not sent (written::no_room): a blocking call with a timeout
  // (node::request) keeps its timeout under backpressure, and a caller that retries does
  // not grow the queue past the bound. time_point::min() never waits and always queues (an
  // actor, a CAF thread: they must not block; docs/architecture.md, "Known limits").
  class write_deadline {
  public:
    explicit write_deadline(std::chrono::steady_clock::time_point deadline);
    ~write_deadline();
    write_deadline(const write_deadline&) = delete;
    write_deadline& operator=(const write_deadline&) = delete;

  private:
    std::optional<std::chrono::steady_clock::time_point> previous_;
  };

  // Any thread. `frame` holds one or more complete frames; a data frame written outside the
  // loop thread first waits for room (see above). False when the link is closed or broken:
  // the frame was not sent.
  bool write(wire::buffer&& frame, flow kind = flow::control);
  // The same for a frame whose large payloads are borrowed (wire::frame_out, ended): they
  // are written from where they lie, and `frame.keep` is held until they are. Its
  // descriptors (`frame.fds`, a local link only) go with the write's first byte.
  enum class written { queued, closed, no_room };
  written write(wire::frame_out&& frame, flow kind);

  // Loop thread: takes `n` of the descriptors received so far, oldest first (the caller
  // owns them); nothing when fewer than `n` arrived.
  std::optional<std::vector<int>> take_fds(std::size_t n);

  // Loop thread: closes the socket now; queued output is dropped.
  void close(const std::string& reason);
  // Loop thread, once the peer process is known dead: delivers the frames it left in the
  // socket, then closes with `reason`.
  void drain_and_close(const std::string& reason);

  // Any thread but the loop's: waits until the output queue is empty, the link closed, or
  // the timeout passed (none: however long the other end takes to read). True when
  // everything queued was written.
  bool flush(std::optional<std::chrono::milliseconds> timeout);

  bool closed() const;
  io_loop& loop() { return loop_; }

  // Loop thread, after open(), on a local link whose other end is an mproc node (a child):
  // offers to move the byte stream into shared memory. The other end maps it and answers;
  // each direction switches when its writer says so in the stream. False when this system
  // gives no memfd or eventfd: the link stays on its socket, as it also does when the other
  // end declines.
  bool offer_ring();
  // Both directions go through shared memory (any thread).
  bool on_ring() const;
  // Before open(): this end accepts an offer (a child's link to its parent). Anywhere else
  // an offer is a protocol error.
  void allow_ring();

  // What crossed the link so far, for introspection (any thread). A write may hold more
  // than one frame; it counts as one.
  struct counters {
    std::uint64_t frames_in = 0, bytes_in = 0;
    std::uint64_t writes_out = 0, bytes_out = 0;
    std::uint64_t backlog = 0;  // bytes queued, not yet taken by the socket
  };
  counters count() const;
  // The other end's address ("127.0.0.1:4242"), or "" for a Unix socket.
  std::string remote_address() const;
  // "TLSv1.3 TLS_AES_128_GCM_SHA256", or "" for a link in clear.
  std::string encryption() const;
  // The other end closed or reset the connection (rather than this side closing it).
  bool closed_by_peer() const;

private:
  struct ring_state;  // link_ring.hpp
  void on_event(std::uint32_t events);
  void on_readable();
  // Reads once; false when nothing more can be read now (would block, or closed).
  bool read_some();
  // `step` (read_some, open_tls), with no memory for a frame closing the link instead of
  // ending the process.
  bool read_guarded(bool (link::*step)());
  // The socket said end of stream (n == 0) or failed: closes.
  void on_read_end(long n);
  // Hands out the frames in [buf, buf + n), read into the loop's buffer or (direct) into the
  // decoder's, from the socket or the ring; false when the link closed.
  bool deliver(char* buf, std::size_t n, bool direct, bool from_ring = false);
  // An encrypted link: reads records, then opens what was fed.
  bool read_some_tls();
  bool open_tls();
  // recvmsg into [buf, buf + size), keeping the descriptors that came along.
  long receive(char* buf, std::size_t size);
  void on_writable();
  // What a written frame kept alive (a message): released only after out_mtx_ is, since
  // dropping the last reference to a message may drop actors, whose cleanup may write here.
  using released = std::vector<std::shared_ptr<const void>>;
  // out_mtx_ held. Writes queued frames until the socket is full; false when broken.
  bool drain_locked(released& done);
  bool drain_tls_locked(released& done);
  // Seals up to a batch of queued frames into tls_out_; false when the session broke.
  bool seal_some_locked(released& done);
  bool seal_staged_locked();
  // A write failed with `err` (`why`, if given, says more): drops the queue and posts the
  // close; always false.
  bool break_locked(int err, released& done, std::string why = {});
  void pop_front_locked(released& done);
  bool unsent_locked() const { return !out_.empty() || tls_sent_ < tls_out_.size(); }
  // The loop also waits until the socket takes more.
  void want_write();
  // The loop thread writes what is queued (a burst): when the socket takes more, or at once
  // into a ring.
  void flush_later_locked();
  // What the loop watches the socket for while nothing waits to be written: data, or only
  // the other end's end once the other end writes into the ring.
  std::uint32_t read_events() const;
  // out_mtx_ held: read_events(), and the socket's room while the loop waits for it.
  std::uint32_t socket_events_locked() const;
  // ---- shared memory (link_ring.cpp) ----
  // A ring or ring_on frame, which the link reads itself: true when `payload` was one.
  bool on_ring_frame(std::string_view payload);
  void accept_ring(std::uint32_t size);
  // Takes the mapping and both eventfds (this end's, the other's) and watches this end's.
  void install_ring(std::unique_ptr<ring_mapping> mapping, int own_efd, int peer_efd);
  void start_reading_ring();
  // Queues ring_on; the frames after it go through the ring.
  void switch_writes();
  // Registers this end's eventfd with the loop (loop thread).
  void watch_ring();
  void unwatch_ring();
  void on_ring_event();
  bool drain_ring_locked(released& done);
  // Sends a frame's descriptors over the socket ahead of its bytes in the ring.
  enum class carried { sent, later, dropped, broken };
  carried carry_fds_locked(std::vector<int>& fds, released& done);
  // Reads once; true when more is published (the loop is woken for it), false when the
  // ring is empty and the reader idle, or the link closed.
  bool read_ring();
  // Reads the socket up to the next descriptors a frame in the ring announced.
  void pull_carried_fds();
  bool ring_reading() const;
  static bool would_block(int err);
  static constexpr std::size_t max_iov = 64;

  io_loop& loop_;
  int fd_;
  std::uint64_t token_ = 0;
  wire::frame_decoder decoder_;
  frame_handler on_frame_;
  close_handler on_close_;
  batch_handler on_batch_;

  mutable std::mutex out_mtx_;
  std::condition_variable drained_;  // also: room below max_queued_, closed, broken
  // Queued output: a buffer, and the borrowed spans that go out between its bytes.
  struct pending {
    wire::buffer buf;
    std::vector<wire::borrowed_span> borrowed;
    std::shared_ptr<const void> keep;
    std::size_t size = 0;  // buf plus every span
    std::vector<int> fds;  // owned until they are sent with the frame's first byte
    std::size_t weight = 0;  // what the files of `fds` hold (descriptor_backlog)
    bool switches = false;   // ring_on: the frames after it go through the ring
  };
  written enqueue(pending&& frame, flow kind);
  // out_mtx_ held: until there is room for a data frame, or `deadline` passes (false).
  bool wait_for_room(std::unique_lock<std::mutex>& guard,
                     std::optional<std::chrono::steady_clock::time_point> deadline);
  bool room_locked() const {
    return out_bytes_ + backlog_.total() < max_queued_ || closed_ || broken_;
  }
  // Forgets the descriptors' weight of the frames the other end has read.
  void refresh_backlog_locked();
  bool join_tail_locked(pending& frame);
  static constexpr std::size_t join_max_frame = 4 * 1024;
  static constexpr std::size_t join_max_buffer = 64 * 1024;
  // Appends the pieces of `frame` from byte `skip` on to iov[n..max); false when they did
  // not all fit.
  static bool pieces(const pending& frame, std::size_t skip, iovec* iov, std::size_t& n,
                     std::size_t max);

  std::deque<pending> out_;
  std::size_t out_bytes_ = 0;  // unsent bytes in out_
  std::uint64_t writes_out_ = 0, bytes_out_ = 0;  // out_mtx_ held
  // Written by the loop thread only; atomic for count().
  std::atomic<std::uint64_t> frames_in_{0}, bytes_in_{0};
  const std::size_t max_queued_;
  std::size_t out_offset_ = 0;  // bytes of out_.front() already written
  std::uint64_t stream_sent_ = 0;  // bytes the socket took, ever
  descriptor_backlog backlog_;
  // When the last frame sent straight from a caller's thread went out; a frame following
  // within burst_gap is left to the loop thread, which batches.
  std::chrono::steady_clock::time_point last_direct_{};
  // Descriptors received and not yet taken (loop thread), one set per recvmsg that brought
  // some: the kernel hands over one sendmsg's set at a time, with the first byte of the fds
  // frame that announces it. A set the kernel could not hand over whole (MSG_CTRUNC: this
  // process was out of descriptors, or the peer sent too many) is `lost`: its fds frame
  // gets -1 in the missing places, so the message naming them fails alone, not the link.
  struct fd_set_in {
    std::vector<int> fds;
    bool lost = false;
  };
  std::deque<fd_set_in> fds_in_;
  std::size_t fds_in_count_ = 0;
  static constexpr std::chrono::microseconds burst_gap{5};
  // Encryption (out_mtx_ held): records sealed and not yet sent, and small frames gathered
  // into one record.
  std::unique_ptr<tls::session> tls_;
  std::string tls_out_;
  std::size_t tls_sent_ = 0;
  std::string tls_stage_;
  // Written under out_mtx_; atomic because closed() reads it for every frame delivered.
  std::atomic<bool> closed_{false};
  bool broken_ = false;  // a write failed; a close is posted to the loop
  bool by_peer_ = false;
  // Set on the loop thread under out_mtx_ (writers read it under the lock), kept until the
  // link is destroyed.
  std::unique_ptr<ring_state> ring_;
  bool ring_allowed_ = false;
};

} // namespace mproc::detail
