// What the tests of TCP links share (test_distributed, test_link_security, test_strangers):
// another node in a child process, raw connections from chosen loopback addresses, and a
// TLS client by hand, to play both the proper peer and the stranger.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include <msgpack.hpp>

#include "mproc/runtime/internal/tls.hpp"
#include "mproc/runtime/node.hpp"

namespace test {

// Registered actors of the test binaries that link this file: echo_text (a string back),
// listening_node (listens with a key, answers its port).

// A node in a child process listening with `key` (and, when `plaintext`, also for clients
// in clear), and its port.
struct other_node {
  mproc::process process;
  std::uint16_t port;
  std::string address() const { return "127.0.0.1:" + std::to_string(port); }
};
other_node start_other_node(mproc::node& node, const mproc::authkey& key, bool plaintext);

// A socket listening on a free loopback port, and the port.
int loopback_listener(std::uint16_t& port);

// A TCP connection to the loopback port, from `from` (another loopback address stands in
// for another machine: all of 127/8 is this host's). Reads time out after 5 s.
int raw_connect(std::uint16_t port, const char* from = nullptr);
// True when the other side closes `fd` (reads return EOF or reset) within 5 s; what it
// sends meanwhile is read and dropped.
bool closed_by_other_side(int fd);
// The same, and not one byte came before the close.
bool closed_without_a_byte(int fd);

// A TLS client by hand on `fd`: the session once the handshake with `key` is done, or none.
// `answered`: the node sent something back (an alert, for a wrong key) rather than closing.
// `then`, if any, is sealed and sent in the same write as the handshake's last bytes.
struct by_hand {
  std::unique_ptr<mproc::detail::tls::session> session;
  bool answered = false;
};
by_hand tls_by_hand(int fd, std::string_view key, std::string_view then = {});

// Sends `bytes` (frames) through the session.
void send_sealed(int fd, mproc::detail::tls::session& s, std::string_view bytes);

// A client of the plaintext handshake by hand (docs/protocol.md 8.2) on a fresh connection
// to `port`: the socket once both sides proved `key`, ready for frames in clear.
int plaintext_by_hand(std::uint16_t port, std::string_view key);
// The same, then this side's hello as node `node` (the frames may start).
int introduced_by_hand(std::uint16_t port, std::string_view key, std::uint64_t node);
// One frame in clear: the envelope `pack` writes, behind its length prefix.
void send_envelope(int fd, const std::function<void(msgpack::packer<msgpack::sbuffer>&)>& pack);
// The next frame's envelope; throws (a failed REQUIRE) when none comes within 5 s.
msgpack::object_handle read_envelope(int fd);

} // namespace test
