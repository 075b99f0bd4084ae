// Pipe: Python's multiprocessing.Pipe as two connection ends.
//
//   auto [parent_end, child_end] = mproc::pipe(node);
//   node.spawn_process("worker", {}, child_end);          // the child holds that end now
//   parent_end.send(std::string{"job"}, std::int32_t{7});  // any sendable types
//   auto reply = parent_end.recv();                        // a caf::message
//
// The two ends are the two sockets of a socketpair, read and written by the holders' own
// threads: a message crosses from one holder to the other in one write and one read, as in
// Python. An end is held by one process at a time: the one that created it, until the end
// is sent to another process on this machine (as a spawn argument or in a message; the
// socket travels with it), which then holds it, and the end left here is closed (its
// operations throw closed). An end can be sent once, and never to another machine or
// inside a queue item (the message is refused, saying so). When the holder of an end dies
// or closes it, the
// other end sees EOF: recv() returns what was already sent, then throws mproc::error closed;
// send() throws closed. send() does not wait for the reader until 16 MiB are unsent on
// an end (docs/queue.md); send_message(msg, timeout) bounds that wait.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <utility>

#include <caf/allowed_unsafe_message_type.hpp>
#include <caf/make_message.hpp>
#include <caf/message.hpp>

#include "mproc/runtime/deadline.hpp"
#include "mproc/runtime/message_types.hpp"
#include "mproc/runtime/sendable.hpp"
#include "mproc/serialization/bytes.hpp"

namespace mproc {

class node;

namespace detail {
class pipe_socket;
}

class connection {
public:
  using millis = std::chrono::milliseconds;

  connection() = default;  // invalid; every operation throws

  // Sends one message made of `xs` (sendable types, no actor references).
  template <class... Ts>
  void send(Ts&&... xs) {
    send_message(detail::message_of(std::forward<Ts>(xs)...));
  }
  void send_message(const caf::message& msg);
  // The same, giving up with mproc::error timeout (nothing sent) when the other end's
  // buffer has no room within `timeout`.
  void send_message(const caf::message& msg, wait_timeout timeout);
  // Waits for the next message; throws mproc::error: closed at EOF, empty after `timeout`,
  // bad_message when the other end sent raw bytes.
  caf::message recv();
  caf::message recv(wait_timeout timeout);
  // The next message's single value of type T; bad_message if it is something else.
  template <class T>
  T recv_as() {
    return single<T>(recv());
  }

  void send_bytes(const bytes& data);
  void send_bytes(const bytes& data, wait_timeout timeout);
  bytes recv_bytes();
  bytes recv_bytes(wait_timeout timeout);

  // True when a message is here, or data or EOF waits in the socket (recv() may still wait
  // for the rest of a message begun); waits up to `timeout` (none: for ever). Timeouts here
  // take any duration: seconds::max() is for ever, not an overflow into a negative wait.
  bool poll(wait_timeout timeout = millis{0});
  // Both directions end: the other end sees EOF.
  void close();

  // Python's fileno(): the socket, readable when data or the other end's close waits in it
  // (a message already read into this process is not there: poll() sees both). Throws
  // closed for an invalid or closed end.
  int fileno() const;
  bool readable() const { return socket_ && readable_; }
  bool writable() const { return socket_ && writable_; }

private:
  friend std::pair<connection, connection> pipe(node&, bool);
  friend struct wire::codec<connection>;

  connection(std::shared_ptr<detail::pipe_socket> socket, bool readable, bool writable);
  // The socket, if this end may be used that way (else throws bad_arguments).
  detail::pipe_socket& usable(const char* what, bool to_read) const;
  [[noreturn]] static void throw_wrong_type(const caf::message& m);

  template <class T>
  static T single(const caf::message& m) {
    if (!m.match_elements<T>())
      throw_wrong_type(m);
    return m.get_as<T>(0);
  }

  // Shared by the copies of an end in this process (copies are handles, as queues are).
  std::shared_ptr<detail::pipe_socket> socket_;
  bool readable_ = false;
  bool writable_ = false;
};

// Two connected ends. duplex = false gives (read-only end, write-only end), as Python's
// Pipe(False).
std::pair<connection, connection> pipe(node& owner, bool duplex = true);

} // namespace mproc

// An end on the wire: [descriptor index, mode] (docs/protocol.md, "Descriptors"); the
// socket itself travels beside the frame. Encoding gives the end away (see above) and fails
// where no descriptor can go along: to another machine, or inside a queue item.
template <>
struct mproc::wire::codec<mproc::connection> {
  static std::string name() { return "connection"; }
  static void encode(packer& pk, const mproc::connection& c, codec_state& st);
  static bool decode(const msgpack::object& o, mproc::connection& out, codec_state& st);
};

template <>
struct caf::allowed_unsafe_message_type<mproc::connection> : std::true_type {};
