// One end of a pipe: a stream socket of a socketpair carrying length-prefixed frames
// (docs/protocol.md section 1's frames, whose payload here is any bytes). The holder's own
// threads read and write it: a message crosses from one holder process to the other in one
// write and one read, with no node in between.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "mproc/runtime/errors.hpp"
#include "mproc/runtime/spin.hpp"
#include "mproc/serialization/bytes.hpp"

namespace mproc::detail {

class pipe_socket : public std::enable_shared_from_this<pipe_socket> {
public:
  using millis = std::chrono::milliseconds;

  // The largest frame an end sends or accepts; a larger announced length from the other
  // end is a broken stream (bad_message), never an allocation of that size.
  static constexpr std::uint32_t max_frame = std::uint32_t{1} << 30;
  // Unsent bytes an end holds before send() waits: what the socket does not take at once
  // is written in the background (pipe_flusher), so a sender does not wait for a reader
  // that is busy (a socket buffer holds only a few hundred small messages).
  static constexpr std::size_t max_pending = std::size_t{16} << 20;

  // An end on its way to another process: the socket's descriptor and what this process
  // had read from it but not taken, and had sent on it but not written yet. The receiver
  // starts from those, so nothing is lost or reordered by the move.
  struct handoff {
    int fd = -1;
    bytes unread;
    bytes unsent;
  };

  // Takes ownership of `fd`, one end of a SOCK_STREAM socketpair.
  explicit pipe_socket(int fd);
  // An end that arrived from another process. Call resume() once it is in a shared_ptr.
  explicit pipe_socket(handoff&& from);
  // Hands bytes that arrived unsent to the background writer.
  void resume();
  ~pipe_socket();
  pipe_socket(const pipe_socket&) = delete;
  pipe_socket& operator=(const pipe_socket&) = delete;

  // Sends one frame: writes what the socket takes, keeps the rest for the background. Waits
  // only while max_pending bytes are unsent, up to `timeout` (errc::timeout, nothing sent).
  // Throws mproc::error: closed when this end or the other is closed.
  void send(const char* data, std::size_t size, std::optional<millis> timeout);
  // Writes unsent bytes without waiting; true when none are left (or none can ever go).
  bool flush();
  // Waits until every unsent byte is written (or can never be), up to `timeout`.
  bool wait_flushed(millis timeout);
  int fd() const { return fd_; }
  // close() ran, or the end went to another process.
  bool closed() const { return closed_; }
  // Reads one frame; throws closed at EOF (after every whole frame), empty after `timeout`,
  // bad_message for a length above max_frame (the end is closed then).
  bytes recv(std::optional<millis> timeout);
  // True when a whole frame is buffered, or a broken header that recv reports at once, or
  // data or EOF waits in the socket; waits up to `timeout` (none: for ever).
  bool poll(std::optional<millis> timeout);
  // Ends both directions: a recv here returns at once, the other end sees EOF after what
  // was sent (unsent bytes still go out first). Idempotent.
  void close();
  // The end for another process, in two steps so that a message that does not go out loses
  // nothing: lend() makes the handoff (the end is unusable here meanwhile), then
  // settle_lend(true) closes it here once the frame carrying it went to its link, or
  // settle_lend(false) gives it back. lend() throws closed when the end is closed or already
  // on its way, bad_arguments while another thread is in recv. Neither waits.
  handoff lend();
  void settle_lend(bool sent);
  // The background writer lets go of this end if nothing is unsent: true then, and a later
  // send registers the end again (send_mtx_ taken).
  bool unwatch_if_idle();
  // The background writer could not start: a later send registers the end again.
  void unwatch();
  // The background writer dropped this end (node exit, its reader silent for the drain's
  // time): its unsent bytes are dropped, and the end is broken (a frame may be cut short):
  // the other end sees EOF, a send waiting for room here throws closed. The bytes dropped.
  std::size_t unwatched();
  // Whether the background writer should wait for the socket to take more: not while the
  // end is lent (settle_lend wakes the writer), nor once it went away (its descriptor
  // number may be another's by now: flush() settles it without waiting).
  bool awaits_socket();

private:
  using deadline_t = std::optional<std::chrono::steady_clock::time_point>;

  // No timeout, or a century or more (now + milliseconds::max() overflows): no deadline.
  static deadline_t deadline_of(std::optional<millis> timeout);
  [[noreturn]] static void fail(errc code, const std::string& what);
  // recv_mtx_ held: waits until the socket is readable or `deadline`, spinning first while
  // recent waits were short; false on timeout.
  bool wait_readable(std::optional<std::chrono::steady_clock::time_point> deadline);
  // recv_mtx_ held: reads what the socket has into the buffer; false at EOF.
  bool fill(std::optional<std::chrono::steady_clock::time_point> deadline);
  bool frame_buffered() const;
  // recv_mtx_, or an empty lock when `deadline` passed first.
  std::unique_lock<std::timed_mutex> lock_recv(
    std::optional<std::chrono::steady_clock::time_point> deadline);
  // recv_mtx_ held: the next frame (or the rest of partial_). Throws as recv does, and
  // std::bad_alloc.
  bytes recv_frame(deadline_t deadline);
  // recv_mtx_ held: reads a frame's header (from the buffer, else the socket) and takes it
  // off; its length. Throws closed at EOF, bad_message above max_frame.
  std::uint32_t take_header(std::optional<std::chrono::steady_clock::time_point> deadline);
  // send_mtx_ held: writes from out_ until the socket is full; false when broken.
  void write_pending_locked();
  // send_mtx_ held: out_ empty, and its memory given back once it held a large message
  // (one send of 500 MB would otherwise keep 500 MB for the end's life).
  void clear_out_locked();
  [[noreturn]] void throw_closed(const char* what) const;

  int fd_;  // open until destruction or settle_lend(true): a thread may be waiting on it
  std::atomic<bool> closed_{false};
  std::atomic<bool> given_away_{false};
  std::mutex send_mtx_;
  std::condition_variable sent_;  // out_ shrank, or the end broke
  std::vector<char> out_;         // unsent: out_[out_begin_, out_.size())
  std::size_t out_begin_ = 0;
  bool broken_ = false;           // a write failed: the other end is gone
  bool watched_ = false;          // the background writer has this end
  bool lent_ = false;             // between lend() and settle_lend()
  std::timed_mutex recv_mtx_;
  std::vector<char> in_;  // received bytes not yet taken: in_[in_begin_, in_end_)
  std::size_t in_begin_ = 0;
  std::size_t in_end_ = 0;
  bool eof_ = false;
  spin_gauge arrivals_;  // how long recent reads waited for the socket
  // A frame a timed recv had begun when its time ran out: its length and what came of it.
  struct partial_frame {
    std::uint32_t length;
    bytes body;
  };
  std::optional<partial_frame> partial_;
};

} // namespace mproc::detail
