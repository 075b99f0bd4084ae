// TCP between nodes: addresses, the listening socket, and the client side of the handshake.
// The server side runs on the loop (listener.hpp).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

struct sockaddr_storage;  // <sys/socket.h>

namespace mproc::detail {

namespace tls {
class session;
class certificates;
}

struct endpoint {
  std::string host;  // numeric IPv4 or IPv6 address, or a name to resolve
  std::uint16_t port = 0;
  std::string text() const;
};

// The numeric address and port of an IPv4 or IPv6 socket address ("?" as host otherwise).
endpoint endpoint_of(const sockaddr_storage& a);

// "127.0.0.1:7000", "[::1]:7000", "localhost:7000". Throws mproc::error bad_arguments.
endpoint parse_endpoint(std::string_view text);

// A non-blocking, close-on-exec socket listening on `at`; the port it got (for port 0).
// Throws mproc::error bad_arguments (unusable address) or unreachable (bind failed).
int listen_tcp(const endpoint& at, std::uint16_t& bound_port);

// A socket whose peer proved the authkey, and the TLS session its frames go through (none:
// in clear, after the plaintext handshake of handshake.hpp). Closes the socket unless
// released: one nobody took over (a node that ended meanwhile) does not leak.
struct authenticated_socket {
  int fd = -1;
  std::unique_ptr<tls::session> tls;

  authenticated_socket(int f, std::unique_ptr<tls::session> t);
  authenticated_socket(authenticated_socket&& other) noexcept;
  authenticated_socket& operator=(authenticated_socket&&) = delete;
  ~authenticated_socket();
  int release() { return std::exchange(fd, -1); }
};

// What a TCP link proves itself with: the authkey (TLS with it as the PSK, or where asked
// the plaintext handshake), or certificates.
struct link_credentials {
  std::string key;
  bool plaintext = false;  // a listener also accepts the plaintext handshake; a client uses it
  std::shared_ptr<const tls::certificates> certificates;  // set: these instead of the key
};

// Resolves, connects and authenticates as the client within `timeout` (the time to resolve
// a name included); `cancel_fd` (-1: none) turning readable ends it early. Throws
// mproc::error unreachable, timeout, auth_failed, bad_arguments (no such name) or
// node_shutdown (cancelled).
authenticated_socket connect_authenticated(const endpoint& to, const link_credentials& as,
                                           std::chrono::milliseconds timeout,
                                           int cancel_fd = -1);

} // namespace mproc::detail
