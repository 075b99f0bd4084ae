// Pipe: Python's multiprocessing.Pipe as two connection ends.
//
//   auto [parent_end, child_end] = mproc::pipe(node);
//   node.spawn_process("worker", {}, child_end);          // the child holds that end now
//   parent_end.send(std::string{"job"}, std::int32_t{7});  // any sendable types
//   auto reply = parent_end.recv();                        // a caf::message
//
// An end is held by one process at a time: the one that created it, until the end is sent
// to another process (as a spawn argument or in a message), which then holds it. When the
// holder of an end dies or the end is closed, the other end sees EOF: recv() returns what
// was already sent, then throws mproc::error closed. send() is asynchronous, so it throws
// closed once the end knows: right away after recv() saw EOF, otherwise from the send after
// the pipe refused one (one round trip later). Each direction is a queue
// (actors/queue.hpp) owned by the creating process: keep it running while the pipe is used.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <utility>

#include <caf/make_message.hpp>
#include <caf/message.hpp>

#include "actors/queue.hpp"
#include "serialization/bytes.hpp"

namespace mproc {

class node;

class connection {
public:
  using millis = std::chrono::milliseconds;

  connection() = default;  // invalid; every operation throws

  // Sends one message made of `xs` (sendable types, no actor references).
  template <class... Ts>
  void send(Ts&&... xs) {
    send_message(caf::make_message(std::forward<Ts>(xs)...));
  }
  void send_message(const caf::message& msg);
  // Waits for the next message; throws mproc::error: closed at EOF, empty after `timeout`,
  // bad_message when the other end sent raw bytes.
  caf::message recv();
  caf::message recv(millis timeout);
  // The next message's single value of type T; bad_message if it is something else.
  template <class T>
  T recv_as() {
    return single<T>(recv());
  }

  void send_bytes(bytes data);
  bytes recv_bytes();
  bytes recv_bytes(millis timeout);

  // True when recv() would not wait (a message is here, or EOF); waits up to `timeout`.
  bool poll(millis timeout = millis{0});
  // Both directions end: the other end sees EOF.
  void close();

  bool readable() const { return static_cast<bool>(in_.actor()); }
  bool writable() const { return static_cast<bool>(out_.actor()); }

private:
  friend std::pair<connection, connection> pipe(node&, bool);
  friend struct wire::codec<connection>;

  connection(detail::queue_core in, detail::queue_core out, std::uint8_t end);
  bytes take(std::optional<millis> timeout);
  [[noreturn]] static void throw_wrong_type(const caf::message& m);

  template <class T>
  static T single(const caf::message& m) {
    if (!m.match_elements<T>())
      throw_wrong_type(m);
    return m.get_as<T>(0);
  }

  detail::queue_core in_;   // invalid on a write-only end
  detail::queue_core out_;  // invalid on a read-only end
  std::uint8_t end_ = 0;
};

// Two connected ends. duplex = false gives (read-only end, write-only end), as Python's
// Pipe(False).
std::pair<connection, connection> pipe(node& owner, bool duplex = true);

} // namespace mproc

// An end on the wire: [in queue or nil, out queue or nil, end]. Decoding it makes the
// receiving process the end's holder.
template <>
struct mproc::wire::codec<mproc::connection> {
  static std::string name() { return "connection"; }
  static void encode(packer& pk, const mproc::connection& c, codec_state& st);
  static bool decode(const msgpack::object& o, mproc::connection& out, codec_state& st);
};

template <>
struct caf::allowed_unsafe_message_type<mproc::connection> : std::true_type {};
