// Certificates on TCP links between nodes: a server that offers a certificate where a node
// expects the authkey is refused, and nodes with certificate files connect when the CA
// signed them and are refused otherwise, with the reason named. The identities and PEM
// files are made here, with OpenSSL.
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <caf/event_based_actor.hpp>

#include <catch2/catch.hpp>

#include "mproc/runtime/actor_registry.hpp"
#include "mproc/runtime/node.hpp"
#include "support.hpp"
#include "tcp_peers.hpp"

using namespace std::chrono_literals;
using mproc::errc;
using test::code_of;
using test::raw_connect;

namespace {

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

TEST_CASE("a server that offers a certificate instead of the key is refused") {
  test::scoped_node node;
  certificate_server fake;
  auto key = mproc::authkey::generate();
  CHECK(code_of([&] { node->connect(fake.address(), key, 5s); }) == errc::auth_failed);
  CHECK_FALSE(fake.finished);
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
  // credential, so the address waits, until a try is closed before any answer: unreachable
  // (try later), not auth_failed.
  auto rogue = [&] { node->connect(address, pki.node("ca", "rogue"), 5s); };
  CHECK_THAT(test::failure_of(rogue), Catch::Contains("refused this node"));
  bool made_to_wait = false;
  for (int attempt = 0; attempt < 20 && !made_to_wait; ++attempt)
    made_to_wait = code_of(rogue) == errc::unreachable;
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
