#include "mproc/runtime/internal/tcp.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <memory>

#include "mproc/runtime/deadline.hpp"
#include "mproc/runtime/errors.hpp"
#include "mproc/runtime/internal/handshake.hpp"
#include "mproc/runtime/internal/resolve.hpp"
#include "mproc/runtime/internal/tls.hpp"

namespace mproc::detail {

namespace {

using clock_type = std::chrono::steady_clock;

[[noreturn]] void fail(errc code, const std::string& why) {
  throw error(make_error(code, why), why);
}

// Closes the socket unless released.
struct socket_guard {
  int fd;
  ~socket_guard() {
    if (fd >= 0)
      ::close(fd);
  }
  int release() { return std::exchange(fd, -1); }
};

void wait_for(int fd, short events, const due& deadline, const endpoint& to) {
  if (!ready_by(fd, events, deadline, "connecting to " + to.text()))
    fail(errc::timeout, "connecting to " + to.text() + ": no answer within the timeout");
}

void send_all(int fd, const std::uint8_t* p, std::size_t n, const due& deadline,
              const endpoint& to) {
  while (n > 0) {
    auto w = ::send(fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w > 0) {
      p += w;
      n -= static_cast<std::size_t>(w);
    } else if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
      wait_for(fd, POLLOUT, deadline, to);
    } else {
      fail(errc::unreachable, "connecting to " + to.text() + ": " + std::strerror(errno));
    }
  }
}

// What arrived, at least one byte; 0 when the server closed (or reset).
std::size_t recv_some(int fd, char* p, std::size_t n, const due& deadline,
                      const endpoint& to) {
  for (;;) {
    auto r = ::recv(fd, p, n, MSG_DONTWAIT);
    if (r >= 0)
      return static_cast<std::size_t>(r);
    if (errno == ECONNRESET)
      return 0;
    if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
      fail(errc::unreachable, "connecting to " + to.text() + ": " + std::strerror(errno));
    wait_for(fd, POLLIN, deadline, to);
  }
}

// Exactly n bytes; false at EOF (the server closed: it refused us).
bool recv_all(int fd, std::uint8_t* p, std::size_t n, const due& deadline,
              const endpoint& to) {
  while (n > 0) {
    auto got = recv_some(fd, reinterpret_cast<char*>(p), n, deadline, to);
    if (got == 0)
      return false;
    p += got;
    n -= got;
  }
  return true;
}

// Tries each address `at` resolves to with a fresh non-blocking socket; `use(fd, address,
// left)` (left: the addresses still to try, this one included) returns "" when the socket is
// ready, else why not. The first ready socket, or throws unreachable naming `what` and the
// last reason.
template <class F>
int first_usable_socket(const endpoint& at, bool passive, const due& by,
                        const std::string& what, F use) {
  auto found = resolve(at, passive, by);
  std::size_t left = 0;
  for (auto* a = found.get(); a != nullptr; a = a->ai_next)
    ++left;
  std::string last = "no address";
  for (auto* a = found.get(); a != nullptr; a = a->ai_next, --left) {
    socket_guard s{::socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                            a->ai_protocol)};
    if (s.fd < 0)
      continue;
    last = use(s.fd, *a, left);
    if (last.empty())
      return s.release();
  }
  fail(errc::unreachable, what + " " + at.text() + ": " + last);
}

// Each address gets an equal share of what is left of the timeout (an address whose packets
// a firewall drops would otherwise take all of it, and the next, reachable one, none); the
// last one gets the rest. Only when the last one times out is the connect a timeout.
int connect_any(const endpoint& to, const due& deadline) {
  auto use = [&](int fd, const addrinfo& a, std::size_t left) {
    if (::connect(fd, a.ai_addr, a.ai_addrlen) != 0 && errno != EINPROGRESS)
      return std::string{std::strerror(errno)};
    due share = deadline;
    if (left > 1 && deadline.at != clock_type::time_point::max()) {
      auto now = clock_type::now();  // a deadline already past gives a share of nothing
      auto rest = std::max(clock_type::duration::zero(), deadline.at - now);
      share.at = now + rest / static_cast<clock_type::rep>(left);
    }
    if (left > 1 && !ready_by(fd, POLLOUT, share, "connecting to " + to.text()))
      return std::string{"no answer within its share of the timeout"};
    wait_for(fd, POLLOUT, deadline, to);
    int err = 0;
    socklen_t len = sizeof err;
    ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0)
      return std::string{std::strerror(err)};
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return std::string{};
  };
  return first_usable_socket(to, false, deadline, "cannot connect to", use);
}

} // namespace

endpoint endpoint_of(const sockaddr_storage& a) {
  char text[INET6_ADDRSTRLEN] = "?";
  endpoint e;
  if (a.ss_family == AF_INET) {
    const auto& v4 = reinterpret_cast<const sockaddr_in&>(a);
    ::inet_ntop(AF_INET, &v4.sin_addr, text, sizeof text);
    e.port = ntohs(v4.sin_port);
  } else {
    const auto& v6 = reinterpret_cast<const sockaddr_in6&>(a);
    ::inet_ntop(AF_INET6, &v6.sin6_addr, text, sizeof text);
    e.port = ntohs(v6.sin6_port);
  }
  e.host = text;
  return e;
}

std::string endpoint::text() const {
  return host.find(':') != std::string::npos ? "[" + host + "]:" + std::to_string(port)
                                             : host + ":" + std::to_string(port);
}

endpoint parse_endpoint(std::string_view text) {
  auto bad = [&] {
    fail(errc::bad_arguments,
         "'" + std::string{text} + "' is not HOST:PORT (IPv6: [ADDRESS]:PORT)");
  };
  endpoint e;
  std::string_view port;
  if (!text.empty() && text.front() == '[') {
    auto close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':')
      bad();
    e.host = std::string{text.substr(1, close - 1)};
    port = text.substr(close + 2);
  } else {
    auto colon = text.rfind(':');
    if (colon == std::string_view::npos || text.find(':') != colon)
      bad();
    e.host = std::string{text.substr(0, colon)};
    port = text.substr(colon + 1);
  }
  if (e.host.empty() || port.empty() || port.size() > 5)
    bad();
  unsigned value = 0;
  for (char c : port) {
    if (c < '0' || c > '9')
      bad();
    value = value * 10 + static_cast<unsigned>(c - '0');
  }
  if (value > 65535)
    bad();
  e.port = static_cast<std::uint16_t>(value);
  return e;
}

int listen_tcp(const endpoint& at, std::uint16_t& bound_port) {
  auto use = [&](int fd, const addrinfo& a, std::size_t) {
    int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (::bind(fd, a.ai_addr, a.ai_addrlen) != 0 || ::listen(fd, 128) != 0)
      return std::string{std::strerror(errno)};
    sockaddr_storage local{};
    socklen_t len = sizeof local;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &len);
    bound_port = ntohs(local.ss_family == AF_INET6
                         ? reinterpret_cast<sockaddr_in6*>(&local)->sin6_port
                         : reinterpret_cast<sockaddr_in*>(&local)->sin_port);
    return std::string{};
  };
  return first_usable_socket(at, true, due{}, "cannot listen on", use);
}

namespace {

// The plaintext handshake of handshake.hpp, client side.
void prove_in_clear(int fd, const endpoint& to, std::string_view key, const due& deadline) {
  namespace hs = handshake;
  auto mine = hs::fresh_nonce();
  auto hello = hs::make_hello(mine);
  send_all(fd, hello.data(), hello.size(), deadline, to);
  std::array<std::uint8_t, hs::challenge_size> challenge{};
  if (!recv_all(fd, challenge.data(), challenge.size(), deadline, to))
    fail(errc::auth_failed, to.text() + " closed the connection during the handshake"
                              + " (it may accept TLS only)");
  hs::nonce theirs{};
  if (!hs::read_challenge(challenge, theirs))
    fail(errc::auth_failed, to.text() + " is not an mproc node of this protocol version");
  auto proof = hs::client_mac(key, theirs, mine);
  send_all(fd, proof.data(), proof.size(), deadline, to);
  hs::mac verdict{};
  if (!recv_all(fd, verdict.data(), verdict.size(), deadline, to))
    fail(errc::auth_failed, to.text() + " rejected the authkey");
  // Mutual: the server proves the key too, after this side did.
  if (!hs::same(hs::server_mac(key, mine, theirs), verdict))
    fail(errc::auth_failed, to.text() + " does not know the authkey");
}

// The server's verdict on this side's certificate comes after the handshake: its hello,
// which stays in the session for the link, or an alert (either may have come with its
// Finished already).
void await_verdict(int fd, const endpoint& to, tls::session& tls,
                   const due& deadline) {
  std::string out;
  char in[4096];
  auto verdict = tls.await_data(nullptr, 0, out);
  while (verdict == tls::session::progress::more) {
    send_all(fd, reinterpret_cast<const std::uint8_t*>(out.data()), out.size(), deadline, to);
    out.clear();
    auto got = recv_some(fd, in, sizeof in, deadline, to);
    if (got == 0)
      fail(errc::auth_failed, to.text() + " closed the connection after the handshake");
    verdict = tls.await_data(in, got, out);
  }
  if (verdict == tls::session::progress::failed)
    fail(errc::auth_failed, to.text() + " refused this node (" + tls.failure() + ")");
  send_all(fd, reinterpret_cast<const std::uint8_t*>(out.data()), out.size(), deadline, to);
}

std::unique_ptr<tls::session> handshake_tls(int fd, const endpoint& to,
                                            const link_credentials& as,
                                            const due& deadline) {
  auto tls = as.certificates
               ? std::make_unique<tls::session>(tls::role::client, *as.certificates)
               : std::make_unique<tls::session>(tls::role::client, as.key);
  std::string out;
  char in[4096];
  std::size_t got = 0;
  bool answered = false;
  for (;;) {
    auto step = tls->handshake(in, got, out);
    if (step == tls::session::progress::failed) {
      ::send(fd, out.data(), out.size(), MSG_NOSIGNAL | MSG_DONTWAIT);  // the alert, if any
      fail(errc::auth_failed,
           to.text()
             + (tls->wrong_key() ? " does not hold this authkey or certificate authority ("
                                 : " refused the TLS handshake (")
             + tls->failure() + ")");
    }
    send_all(fd, reinterpret_cast<const std::uint8_t*>(out.data()), out.size(), deadline, to);
    out.clear();
    if (step == tls::session::progress::done)
      break;
    got = recv_some(fd, in, sizeof in, deadline, to);
    if (got == 0 && !answered)  // a wrong key gets an alert; this is the admission's door
      fail(errc::unreachable, to.text() + " closed the connection before answering (its "
                                "limits on connections, or a wait after wrong keys from this "
                                "address): try again later");
    if (got == 0)
      fail(errc::auth_failed, to.text() + " closed the connection during the handshake");
    answered = true;
  }
  await_verdict(fd, to, *tls, deadline);
  return tls;
}

} // namespace

authenticated_socket::authenticated_socket(int f, std::unique_ptr<tls::session> t)
  : fd(f), tls(std::move(t)) {}

authenticated_socket::authenticated_socket(authenticated_socket&& other) noexcept
  : fd(std::exchange(other.fd, -1)), tls(std::move(other.tls)) {}

authenticated_socket::~authenticated_socket() {
  if (fd >= 0)
    ::close(fd);
}

authenticated_socket connect_authenticated(const endpoint& to, const link_credentials& as,
                                           std::chrono::milliseconds timeout, int cancel_fd) {
  due deadline{clock_type::now() + timeout, cancel_fd};
  socket_guard s{connect_any(to, deadline)};
  if (as.plaintext && !as.certificates) {
    prove_in_clear(s.fd, to, as.key, deadline);
    return {s.release(), nullptr};
  }
  auto tls = handshake_tls(s.fd, to, as, deadline);
  return {s.release(), std::move(tls)};
}

} // namespace mproc::detail
