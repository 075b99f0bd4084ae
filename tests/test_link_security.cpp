// Keys and encryption on TCP links between nodes: TLS 1.3 keyed by the authkey (what crosses
// the wire is unreadable and cannot be changed unnoticed, and a server without the key cannot
// stand in with a certificate), and the plaintext handshake where a listener allows it. A
// tap between two nodes records their bytes as an observer on the network would.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <mutex>
#include <string>
#include <thread>

#include <sys/stat.h>

#include <cstdio>
#include <filesystem>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <caf/event_based_actor.hpp>

#include <catch2/catch.hpp>

#include "mproc/runtime/actor_registry.hpp"
#include "mproc/runtime/internal/handshake.hpp"
#include "mproc/runtime/node.hpp"
#include "support.hpp"
#include "tcp_peers.hpp"

using namespace std::chrono_literals;
using mproc::errc;
using test::closed_by_other_side;
using test::code_of;
using test::raw_connect;
using test::start_other_node;
using test::tls_by_hand;
namespace hs = mproc::detail::handshake;
using security = mproc::node::link_security;

namespace {

// Stands between a client and a node's port as an observer on the network would: forwards
// both ways and records every byte. corrupt_next flips a bit in the next bytes a client sends.
class tap {
public:
  explicit tap(std::uint16_t to) : to_(to) {
    listen_fd_ = test::loopback_listener(port_);
    thread_ = std::thread{[this] { run(); }};
  }
  ~tap() {
    stop_ = true;
    thread_.join();
    ::close(listen_fd_);
  }
  tap(const tap&) = delete;
  tap& operator=(const tap&) = delete;

  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  std::string seen() const {
    std::lock_guard guard{mtx_};
    return seen_;
  }
  std::atomic<bool> corrupt_next{false};

private:
  // No Catch assertions on this thread: they are not thread-safe.
  void run() {
    pollfd p{listen_fd_, POLLIN, 0};
    while (!stop_ && ::poll(&p, 1, 50) == 0) {
    }
    if (stop_)
      return;
    int client = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    int server = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(to_);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (client >= 0 && ::connect(server, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0)
      forward(client, server);
    ::close(client);
    ::close(server);
  }

  void forward(int client, int server) {
    pollfd ends[2] = {{client, POLLIN, 0}, {server, POLLIN, 0}};
    char buf[65536];
    while (!stop_) {
      if (::poll(ends, 2, 50) <= 0)
        continue;
      for (int i = 0; i < 2; ++i) {
        if (ends[i].revents == 0)
          continue;
        auto n = ::recv(ends[i].fd, buf, sizeof buf, 0);
        if (n <= 0)
          return;
        if (i == 0 && corrupt_next.exchange(false))
          buf[n - 1] ^= 0x01;
        {
          std::lock_guard guard{mtx_};
          seen_.append(buf, static_cast<std::size_t>(n));
        }
        if (::send(ends[1 - i].fd, buf, static_cast<std::size_t>(n), MSG_NOSIGNAL) != n)
          return;
      }
    }
  }

  std::uint16_t to_;
  std::uint16_t port_ = 0;
  int listen_fd_ = -1;
  std::atomic<bool> stop_{false};
  mutable std::mutex mtx_;
  std::string seen_;
  std::thread thread_;
};

// A key and a certificate for it, made here: a CA's when `issuer` is none (self-signed),
// else one `issuer` signed.
struct identity {
  std::shared_ptr<EVP_PKEY> key;
  std::shared_ptr<X509> cert;
};

identity issue(const char* name, const identity* issuer = nullptr) {
  identity id{{EVP_EC_gen("P-256"), EVP_PKEY_free}, {X509_new(), X509_free}};
  auto* x = id.cert.get();
  X509_set_version(x, 2);
  static long serial = 1;
  ASN1_INTEGER_set(X509_get_serialNumber(x), serial++);
  X509_gmtime_adj(X509_getm_notBefore(x), 0);
  X509_gmtime_adj(X509_getm_notAfter(x), 3600);
  X509_set_pubkey(x, id.key.get());
  X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(name), -1, -1, 0);
  X509_set_issuer_name(x, X509_get_subject_name(issuer ? issuer->cert.get() : x));
  if (!issuer) {
    auto* ca = X509V3_EXT_conf_nid(nullptr, nullptr, NID_basic_constraints, "critical,CA:TRUE");
    X509_add_ext(x, ca, -1);
    X509_EXTENSION_free(ca);
  }
  REQUIRE(X509_sign(x, (issuer ? issuer : &id)->key.get(), EVP_sha256()) > 0);
  return id;
}

// A TLS 1.3 server with a certificate of its own (self-signed) and no PSK: what a server
// without the key would try. It accepts one connection; `finished` tells whether a handshake
// completed with it.
class certificate_server {
public:
  certificate_server() {
    ctx_ = SSL_CTX_new(TLS_server_method());
    SSL_CTX_set_min_proto_version(ctx_, TLS1_3_VERSION);
    REQUIRE(SSL_CTX_use_certificate(ctx_, id_.cert.get()) == 1);
    REQUIRE(SSL_CTX_use_PrivateKey(ctx_, id_.key.get()) == 1);
    fd_ = test::loopback_listener(port_);
    thread_ = std::thread{[this] { serve_one(); }};
  }
  ~certificate_server() {
    thread_.join();
    ::close(fd_);
    SSL_CTX_free(ctx_);
  }
  certificate_server(const certificate_server&) = delete;
  certificate_server& operator=(const certificate_server&) = delete;

  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  std::atomic<bool> finished{false};

private:
  // No Catch assertions on this thread. Gives up after 10 s without a client.
  void serve_one() {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, 10000) != 1)
      return;
    int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
    timeval tv{5, 0};
    ::setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    SSL* ssl = SSL_new(ctx_);
    SSL_set_fd(ssl, c);
    finished = SSL_accept(ssl) == 1;
    SSL_free(ssl);
    ::close(c);
  }

  identity id_ = issue("not a node");
  SSL_CTX* ctx_ = nullptr;
  int fd_ = -1;
  std::uint16_t port_ = 0;
  std::thread thread_;
};

// A TLS 1.3 client with no certificate: true when the node answered it with data.
bool answered_without_certificate(std::uint16_t port, const char* from) {
  int fd = raw_connect(port, from);
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
  SSL* ssl = SSL_new(ctx);
  SSL_set_fd(ssl, fd);
  char c = 0;
  bool answered = SSL_connect(ssl) == 1 && SSL_read(ssl, &c, 1) == 1;
  SSL_free(ssl);
  SSL_CTX_free(ctx);
  ::close(fd);
  return answered;
}

// PEM files of identities in a private temporary directory, removed with it.
class pem_files {
public:
  pem_files() {
    char dir[] = "/tmp/mproc-pki-XXXXXX";
    REQUIRE(::mkdtemp(dir) != nullptr);
    dir_ = dir;
  }
  ~pem_files() { std::filesystem::remove_all(dir_); }
  pem_files(const pem_files&) = delete;
  pem_files& operator=(const pem_files&) = delete;

  // Writes NAME.crt and NAME.key (mode 0600).
  void write(const std::string& name, const identity& id) {
    FILE* f = std::fopen(path(name + ".crt").c_str(), "w");
    REQUIRE(f != nullptr);
    PEM_write_X509(f, id.cert.get());
    std::fclose(f);
    f = std::fopen(path(name + ".key").c_str(), "w");
    REQUIRE(f != nullptr);
    ::fchmod(::fileno(f), 0600);
    PEM_write_PrivateKey(f, id.key.get(), nullptr, nullptr, 0, nullptr, nullptr);
    std::fclose(f);
  }
  std::string path(const std::string& file) const { return dir_ + "/" + file; }
  // The files of a node called `name` that trusts the CA called `ca`.
  mproc::node::certificates node(const std::string& ca, const std::string& name) const {
    return {path(ca + ".crt"), path(name + ".crt"), path(name + ".key")};
  }

private:
  std::string dir_;
};

// A node standing in for another machine, listening with certificate files.
caf::behavior certified_node(caf::event_based_actor* self, std::string ca, std::string cert,
                             std::string key) {
  return {[=](caf::get_atom) -> std::int32_t {
    try {
      return mproc::this_node().listen(mproc::node::certificates{ca, cert, key});
    } catch (const mproc::error&) {
      self->quit();
      return -1;
    }
  }};
}

} // namespace

MPROC_ACTOR(certified_node);

TEST_CASE("the handshake's proofs depend on the key, both nonces and the direction") {
  auto a = hs::fresh_nonce();
  auto b = hs::fresh_nonce();
  CHECK(a != b);
  auto m = hs::server_mac("key one, sixteen+", a, b);
  CHECK(hs::same(m, hs::server_mac("key one, sixteen+", a, b)));
  CHECK_FALSE(hs::same(m, hs::server_mac("key two, sixteen+", a, b)));
  CHECK_FALSE(hs::same(m, hs::server_mac("key one, sixteen+", b, a)));
  CHECK_FALSE(hs::same(m, hs::client_mac("key one, sixteen+", a, b)));  // no reflection
  hs::nonce n{};
  auto hello = hs::make_hello(a);
  CHECK(hs::read_hello(hello, n));
  CHECK(n == a);
  hello[0] = 'X';
  CHECK_FALSE(hs::read_hello(hello, n));
}

TEST_CASE("a wrong authkey is refused in both directions and the node keeps serving") {
  test::scoped_node node;
  auto key = mproc::authkey::generate();
  auto port = node->listen(key);
  auto address = "127.0.0.1:" + std::to_string(port);
  auto wrong = mproc::authkey::generate();
  // The client's binder, made from its key, does not verify at the server: an alert, closed.
  CHECK(code_of([&] { node->connect(address, wrong); }) == errc::auth_failed);

  // By hand: the node answers a wrong key with an alert, then closes. From another address:
  // 127.0.0.1 now waits after its wrong key above.
  int fd = raw_connect(port, "127.0.0.4");
  auto tried = tls_by_hand(fd, wrong.secret());
  CHECK_FALSE(tried.session);
  CHECK(tried.answered);
  CHECK(closed_by_other_side(fd));
  ::close(fd);

  auto other = start_other_node(*node, key, false);
  auto remote = node->connect(other.address(), key);
  CHECK(remote.connected());
}

TEST_CASE("what nodes say to each other is unreadable on the wire; in clear it is not") {
  test::scoped_node node;
  auto key = mproc::authkey::generate();
  auto other = start_other_node(*node, key, true);  // accepts both: one listener, two runs
  const std::string secret = "the eagle lands at 0400 in sector 7G";
  auto exchange = [&](security how) {
    tap wire{other.port};
    auto remote = node->connect(wire.address(), key, 5s, how);
    auto echo = remote.spawn("echo_text");
    CHECK(node->request<std::string>(echo, 5s, secret) == secret);
    remote.disconnect();
    return wire.seen();
  };
  auto encrypted = exchange(security::tls);
  auto in_clear = exchange(security::plaintext);
  // The tap saw the whole exchange both times: in clear, the text and the actor's name.
  CHECK(in_clear.find(secret) != std::string::npos);
  CHECK(in_clear.find("echo_text") != std::string::npos);
  CHECK(encrypted.size() > 500);
  CHECK(encrypted.find(secret) == std::string::npos);
  CHECK(encrypted.find("echo_text") == std::string::npos);
  CHECK(encrypted.find("eagle") == std::string::npos);
  CHECK(encrypted.find(std::string{key.secret()}) == std::string::npos);
}

TEST_CASE("a byte changed on the wire closes the link; nothing altered is delivered") {
  test::scoped_node node;
  auto key = mproc::authkey::generate();
  auto other = start_other_node(*node, key, false);
  tap wire{other.port};
  auto remote = node->connect(wire.address(), key, 5s);
  auto echo = remote.spawn("echo_text");
  CHECK(node->request<std::string>(echo, 5s, std::string{"before"}) == "before");
  wire.corrupt_next = true;
  // Without integrity, the flipped bit would change a character of "after" and the echo
  // would answer it; the node closes the link at the record that does not verify.
  auto code = code_of([&] { node->request<std::string>(echo, 5s, std::string{"after"}); });
  INFO("the request failed with " << mproc::to_string(code));
  CHECK(code != errc::none);
  CHECK(code != errc::timeout);
  CHECK(test::eventually(5s, [&] { return !remote.connected(); }));
  other.process.terminate();
  other.process.join(10s);
}

TEST_CASE("a node accepts the plaintext handshake only where it listens for it") {
  test::scoped_node node;
  auto key = mproc::authkey::generate();
  auto tls_only = node->listen(key);
  CHECK(code_of([&] {
          node->connect("127.0.0.1:" + std::to_string(tls_only), key, 5s, security::plaintext);
        })
        == errc::auth_failed);
  auto other = start_other_node(*node, key, true);
  auto in_clear = node->connect(other.address(), key, 5s, security::plaintext);
  CHECK(in_clear.connected());
  // The client proves first: a wrong key gets the challenge, then the door.
  int fd = raw_connect(other.port);
  auto mine = hs::fresh_nonce();
  auto hello = hs::make_hello(mine);
  ::send(fd, hello.data(), hello.size(), MSG_NOSIGNAL);
  std::array<std::uint8_t, hs::challenge_size> challenge{};
  REQUIRE(::recv(fd, challenge.data(), challenge.size(), MSG_WAITALL) == hs::challenge_size);
  hs::nonce theirs{};
  REQUIRE(hs::read_challenge(challenge, theirs));
  auto forged = hs::client_mac(mproc::authkey::generate().secret(), theirs, mine);
  ::send(fd, forged.data(), forged.size(), MSG_NOSIGNAL);
  CHECK(test::closed_without_a_byte(fd));  // no verdict: the server proves nothing to it
  ::close(fd);
}

TEST_CASE("a server that offers a certificate instead of the key is refused") {
  test::scoped_node node;
  certificate_server fake;
  auto key = mproc::authkey::generate();
  CHECK(code_of([&] { node->connect(fake.address(), key, 5s); }) == errc::auth_failed);
  CHECK_FALSE(fake.finished);
}

TEST_CASE("a connection turned back to its own node is refused") {
  test::scoped_node node;
  auto key = mproc::authkey::generate();
  auto port = node->listen(key);
  // What a reflection on the network would do: every node holds the same key, so TLS
  // completes; the node's own hello comes back and gives it away.
  auto why = test::failure_of([&] { node->connect("127.0.0.1:" + std::to_string(port), key, 5s); });
  CHECK_THAT(why, Catch::Contains("connected to itself"));
}

TEST_CASE("with certificates, nodes that the CA signed connect and others are refused") {
  test::stderr_capture err;
  test::scoped_node node;
  pem_files pki;
  auto ca = issue("mproc test CA");
  auto other_ca = issue("another CA");
  pki.write("ca", ca);
  pki.write("other-ca", other_ca);
  pki.write("root", issue("root", &ca));
  pki.write("worker", issue("worker", &ca));
  pki.write("rogue", issue("rogue", &other_ca));
  auto files = pki.node("ca", "worker");
  auto host = node->spawn_process("certified_node", {}, files.ca_file, files.cert_file,
                                  files.key_file);
  auto port = node->request<std::int32_t>(host.actor(), 5s, caf::get_atom::value);
  REQUIRE(port > 0);
  auto address = "127.0.0.1:" + std::to_string(port);

  auto remote = node->connect(address, pki.node("ca", "root"), 5s);
  auto echo = remote.spawn("echo_text");
  CHECK(node->request<std::string>(echo, 5s, std::string{"signed"}) == "signed");
  remote.disconnect();
  // A client that does not trust the node's CA refuses it; a client with the authkey
  // instead has no CA at all. Neither is guessing, so neither makes its address wait.
  CHECK(code_of([&] { node->connect(address, pki.node("other-ca", "rogue"), 5s); })
        == errc::auth_failed);
  CHECK(code_of([&] { node->connect(address, mproc::authkey::generate(), 5s); })
        == errc::auth_failed);
  // A certificate another CA signed is refused by the node, with an alert: a wrong
  // credential, so the address waits, until a try is closed before any answer.
  auto rogue = [&] { node->connect(address, pki.node("ca", "rogue"), 5s); };
  CHECK_THAT(test::failure_of(rogue), Catch::Contains("refused this node"));
  bool made_to_wait = false;
  for (int attempt = 0; attempt < 20 && !made_to_wait; ++attempt)
    made_to_wait = test::failure_of(rogue).find("during the handshake") != std::string::npos;
  CHECK(made_to_wait);
  CHECK_THAT(err.text(), Catch::Contains("wrong certificate (TLS handshake: certificate verify"));
  // A client with no certificate at all, from another address.
  CHECK_FALSE(answered_without_certificate(static_cast<std::uint16_t>(port), "127.0.0.6"));
  CHECK(test::eventually(5s, [&] {
    return err.text().find("from 127.0.0.6") != std::string::npos;
  }));
  // Certificates against a listener that takes the authkey.
  auto keyed = node->listen(mproc::authkey::generate());
  CHECK(code_of([&] {
          node->connect("127.0.0.1:" + std::to_string(keyed), pki.node("ca", "root"), 5s);
        })
        == errc::auth_failed);
  // Files that cannot be used are named at once.
  CHECK(code_of([&] { node->connect(address, pki.node("ca", "nobody"), 5s); })
        == errc::bad_arguments);
  ::chmod(pki.path("root.key").c_str(), 0644);
  CHECK(code_of([&] { node->connect(address, pki.node("ca", "root"), 5s); })
        == errc::bad_arguments);
  host.terminate();
  host.join(10s);
}
