// A node's TCP listening socket and the server side of the handshake, on the loop thread.
//
// A connection's first byte picks the handshake: a TLS record (tls.hpp), or, only where the
// node allows it, the plaintext handshake (handshake.hpp). Before a connection has proven
// the authkey nothing of it is decoded but the handshake itself; `admission` decides which connections may try (no source can fill the cap, wrong
// keys make their address wait) and logs refusals. A connection must say something within
// silent_timeout and finish within handshake_timeout.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>

#include "mproc/runtime/internal/admission.hpp"
#include "mproc/runtime/internal/io_loop.hpp"
#include "mproc/runtime/internal/tcp.hpp"

namespace mproc::detail {

class listener {
public:
  // Loop thread: the authenticated socket, ready for frames; `from` the peer's address.
  using accepted_handler = std::function<void(authenticated_socket s, const std::string& from)>;

  static constexpr std::chrono::seconds silent_timeout{1};
  static constexpr std::chrono::seconds handshake_timeout{5};

  // Any thread: binds now (so errors reach the caller); starts accepting on the loop.
  listener(io_loop& loop, const endpoint& at, link_credentials as, accepted_handler on_accepted);
  // Loop thread.
  ~listener();
  listener(const listener&) = delete;
  listener& operator=(const listener&) = delete;

  void start();  // loop thread
  std::uint16_t port() const { return port_; }
  const endpoint& address() const { return at_; }
  // Handshakes refused so far (wrong key, garbage, timeouts): for tests and logs.
  std::uint64_t refused() const { return refused_; }

private:
  struct pending;
  void on_acceptable();
  void pause_accepting(const std::string& why);
  void on_readable(int fd);
  // The first byte arrived: picks the handshake; false when the connection was refused.
  bool choose_handshake(int fd, pending& p);
  // What the handshake sent so far into `buf` (`flags`: MSG_PEEK to leave it there): 0 when
  // nothing yet, -1 when the connection closed (it is refused, and `p` gone).
  long read_handshake(int fd, pending& p, void* buf, std::size_t n, int flags = 0);
  void on_tls_bytes(int fd, pending& p);
  void on_clear_bytes(int fd, pending& p);
  // Closes a pending connection; `how` tells admission how its try ended.
  void refuse(int fd, const std::string& why,
              admission::outcome how = admission::outcome::other);
  void finish(int fd);
  void on_deadline(int fd);

  io_loop& loop_;
  endpoint at_;
  link_credentials as_;
  accepted_handler on_accepted_;
  int fd_ = -1;
  std::uint16_t port_ = 0;
  std::uint64_t token_ = 0;
  std::uint64_t resume_timer_ = 0;
  std::unordered_map<int, std::unique_ptr<pending>> pending_;
  std::uint64_t refused_ = 0;
  admission admission_;
};

} // namespace mproc::detail
