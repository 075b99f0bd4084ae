#include "mproc/runtime/internal/listener.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <arpa/inet.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>

#include "mproc/runtime/internal/handshake.hpp"
#include "mproc/runtime/internal/tls.hpp"
#include "mproc/runtime/log.hpp"

namespace mproc::detail {

namespace hs = handshake;

struct listener::pending {
  std::string from;  // host:port
  std::string host;  // the source admission counts it under (source_of)
  bool spoke = false;  // a byte arrived
  std::unique_ptr<tls::session> tls;  // a TLS handshake in progress
  std::uint64_t token = 0;
  std::uint64_t timer = 0;
  bool challenged = false;  // hello read, challenge sent: the proof comes next
  hs::nonce client{};
  hs::nonce server{};
  std::array<std::uint8_t, hs::hello_size> in{};
  std::size_t have = 0;
  std::size_t want() const { return challenged ? hs::proof_size : hs::hello_size; }
};

namespace {

// What admission counts a connection under: its IPv4 address, or its IPv6 /64 (a host is
// commonly given a whole /64, so one address per connection would be no limit).
std::string source_of(const sockaddr_storage& a, const endpoint& e) {
  if (a.ss_family != AF_INET6)
    return e.host;
  auto v6 = reinterpret_cast<const sockaddr_in6&>(a).sin6_addr;
  if (IN6_IS_ADDR_V4MAPPED(&v6))
    return e.host;
  std::fill(v6.s6_addr + 8, v6.s6_addr + 16, std::uint8_t{0});
  char text[INET6_ADDRSTRLEN] = "?";
  ::inet_ntop(AF_INET6, &v6, text, sizeof text);
  return std::string{text} + "/64";
}

// The handshake's small messages fit a fresh socket's send buffer: all or nothing.
bool send_small(int fd, const void* p, std::size_t n) {
  return ::send(fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT) == static_cast<ssize_t>(n);
}

} // namespace

listener::listener(io_loop& loop, const endpoint& at, link_credentials as,
                   accepted_handler on_accepted)
  : loop_(loop), at_(at), as_(std::move(as)), on_accepted_(std::move(on_accepted)) {
  if (!as_.certificates)
    tls::check_available(tls::role::server);
  fd_ = listen_tcp(at_, port_);
  at_.port = port_;
}

listener::~listener() {
  // One never started (a listen() refused because the node began to end) is destroyed on
  // the caller's thread: it touches nothing of the loop's.
  if (resume_timer_ != 0)
    loop_.cancel(resume_timer_);
  for (auto& [fd, p] : pending_) {
    loop_.cancel(p->timer);
    loop_.remove(p->token, fd);
    ::close(fd);
  }
  if (token_ != 0)
    loop_.remove(token_, fd_);
  ::close(fd_);
}

void listener::start() {
  token_ = loop_.add(fd_, EPOLLIN, [this](std::uint32_t) { on_acceptable(); });
}

void listener::on_acceptable() {
  // At most this many per wake-up: a flood that refills the backlog as fast as it is taken
  // must not keep the loop from its links and timers (epoll is level-triggered: the rest
  // comes at the next turn).
  constexpr int accepts_per_turn = 64;
  for (int i = 0; i < accepts_per_turn; ++i) {
    sockaddr_storage from{};
    socklen_t len = sizeof from;
    int fd = ::accept4(fd_, reinterpret_cast<sockaddr*>(&from), &len,
                       SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      // EAGAIN, or a connection that went away before it was accepted. Out of descriptors
      // or memory the connection stays queued, and level-triggered epoll would spin.
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
        pause_accepting(std::strerror(errno));
      return;
    }
    auto address = endpoint_of(from);
    auto source = source_of(from, address);
    auto now = io_loop::clock::now();
    if (auto no = admission_.admit(source, now)) {
      ::close(fd);
      ++refused_;
      admission_.log_refusal(address.text(), source, *no, at_.text(), now);
      continue;
    }
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    auto p = std::make_unique<pending>();
    p->from = address.text();
    p->host = source;
    p->token = loop_.add(fd, EPOLLIN | EPOLLRDHUP, [this, fd](std::uint32_t) { on_readable(fd); });
    p->timer = loop_.after(silent_timeout, [this, fd] { on_deadline(fd); });
    pending_.emplace(fd, std::move(p));
  }
}

// A connection silent for silent_timeout is refused; one that spoke gets the rest of
// handshake_timeout.
void listener::on_deadline(int fd) {
  auto i = pending_.find(fd);
  if (i == pending_.end())
    return;
  auto& p = *i->second;
  p.timer = 0;
  if (!p.spoke) {
    refuse(fd, "said nothing within " + std::to_string(silent_timeout.count()) + " s");
    return;
  }
  p.timer = loop_.after(handshake_timeout - silent_timeout, [this, fd] {
    if (auto j = pending_.find(fd); j != pending_.end()) {
      j->second->timer = 0;
      refuse(fd, "no handshake within " + std::to_string(handshake_timeout.count()) + " s");
    }
  });
}

void listener::pause_accepting(const std::string& why) {
  log::warn("not accepting on ", at_.text(), " for 100 ms: ", why);
  loop_.modify(token_, fd_, 0);
  resume_timer_ = loop_.after(std::chrono::milliseconds{100}, [this] {
    resume_timer_ = 0;
    loop_.modify(token_, fd_, EPOLLIN);
  });
}

void listener::on_readable(int fd) {
  auto i = pending_.find(fd);
  if (i == pending_.end())
    return;
  auto& p = *i->second;
  if (!p.spoke && !choose_handshake(fd, p))  // the first byte picks the handshake
    return;
  if (p.tls)
    on_tls_bytes(fd, p);
  else
    on_clear_bytes(fd, p);
}

bool listener::choose_handshake(int fd, pending& p) {
  std::uint8_t first = 0;
  if (read_handshake(fd, p, &first, 1, MSG_PEEK) <= 0)
    return false;
  constexpr std::uint8_t tls_handshake_record = 0x16;
  if (first == tls_handshake_record) {
    try {
      p.tls = as_.certificates
                ? std::make_unique<tls::session>(tls::role::server, *as_.certificates)
                : std::make_unique<tls::session>(tls::role::server, as_.key);
    } catch (const std::exception& e) {
      refuse(fd, e.what());
      return false;
    }
    return true;
  }
  if (!as_.plaintext || as_.certificates) {
    refuse(fd, first == hs::magic[0] ? "the plaintext handshake, which this node does not accept"
                                     : "not a TLS handshake");
    return false;
  }
  return true;
}

long listener::read_handshake(int fd, pending& p, void* buf, std::size_t n, int flags) {
  auto r = ::recv(fd, buf, n, MSG_DONTWAIT | flags);
  if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
    return 0;
  if (r <= 0) {
    refuse(fd, "closed during the handshake");
    return -1;
  }
  p.spoke = true;
  return r;
}

void listener::on_tls_bytes(int fd, pending& p) {
  char in[4096];
  auto r = read_handshake(fd, p, in, sizeof in);
  if (r <= 0)
    return;
  std::string out;
  auto step = p.tls->handshake(in, static_cast<std::size_t>(r), out);
  // A failure's alert goes out too: it tells a client with another key why, nothing more.
  bool sent = out.empty() || send_small(fd, out.data(), out.size());
  if (step == tls::session::progress::failed)
    refuse(fd,
           p.tls->wrong_key() ? (as_.certificates ? "wrong certificate (" : "wrong authkey (")
                                  + p.tls->failure() + ")"
                              : p.tls->failure(),
           p.tls->wrong_key() ? admission::outcome::wrong_key : admission::outcome::other);
  else if (!sent)
    refuse(fd, "the handshake's answer could not be sent");
  else if (step == tls::session::progress::done)
    finish(fd);
}

void listener::on_clear_bytes(int fd, pending& p) {
  auto r = read_handshake(fd, p, p.in.data() + p.have, p.want() - p.have);
  if (r <= 0)
    return;
  p.have += static_cast<std::size_t>(r);
  if (p.have < p.want())
    return;
  std::span<const std::uint8_t> got{p.in.data(), p.have};
  p.have = 0;
  if (!p.challenged) {
    if (!hs::read_hello(got, p.client)) {
      refuse(fd, "not an mproc handshake");
      return;
    }
    p.server = hs::fresh_nonce();
    auto challenge = hs::make_challenge(p.server);
    if (!send_small(fd, challenge.data(), challenge.size())) {
      refuse(fd, "the challenge could not be sent");
      return;
    }
    p.challenged = true;
    return;
  }
  if (!hs::same(hs::client_mac(as_.key, p.server, p.client), got)) {
    refuse(fd, "wrong authkey", admission::outcome::wrong_key);
    return;
  }
  auto verdict = hs::server_mac(as_.key, p.client, p.server);
  if (!send_small(fd, verdict.data(), verdict.size())) {
    refuse(fd, "the verdict could not be sent");
    return;
  }
  finish(fd);
}

void listener::refuse(int fd, const std::string& why, admission::outcome how) {
  auto i = pending_.find(fd);
  auto from = i->second->from;
  auto host = i->second->host;
  loop_.cancel(i->second->timer);
  loop_.remove(i->second->token, fd);
  pending_.erase(i);
  ::close(fd);
  ++refused_;
  auto now = io_loop::clock::now();
  admission_.done(host, how, now);
  admission_.log_refusal(from, host, why, at_.text(), now);
}

void listener::finish(int fd) {
  auto i = pending_.find(fd);
  auto from = i->second->from;
  auto tls = std::move(i->second->tls);
  admission_.done(i->second->host, admission::outcome::proven, io_loop::clock::now());
  loop_.cancel(i->second->timer);
  loop_.remove(i->second->token, fd);
  pending_.erase(i);
  log::info("authenticated node connection from ", from, " on ", at_.text(), " (",
            tls ? tls->description() : std::string{"in clear"}, ")");
  on_accepted_({fd, std::move(tls)}, from);
}

} // namespace mproc::detail
