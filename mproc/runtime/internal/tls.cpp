#include "mproc/runtime/internal/tls.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <climits>
#include <cerrno>
#include <cstring>
#include <mutex>

#include "mproc/runtime/errors.hpp"
#include "mproc/runtime/internal/crypto.hpp"
#include "mproc/runtime/internal/libssl.hpp"

namespace mproc::detail::tls {

namespace {

// Sent in clear in the ClientHello, so it names the protocol and nothing about the node.
constexpr unsigned char psk_identity[] = "mproc tls-psk 1";
constexpr std::size_t psk_identity_size = sizeof psk_identity - 1;
constexpr unsigned char aes128gcm_sha256[] = {0x13, 0x01};
constexpr const char* cipher_suites = "TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256";

[[noreturn]] void unusable(const std::string& why) {
  throw error(make_error(errc::unreachable, why), why);
}

// OpenSSL's reason for error `e`, without its "error:0A000126:SSL routines::" prefix.
std::string reason_text(unsigned long e) {
  char text[256];
  openssl().ERR_error_string_n(e, text, sizeof text);
  std::string_view detail{text};
  if (auto at = detail.find("::"); at != std::string_view::npos)
    detail.remove_prefix(at + 2);
  return std::string{detail};
}

// The external PSK as OpenSSL wants it: a TLS 1.3 session whose master key is the PSK.
SSL_SESSION* psk_session(SSL* ssl, const unsigned char* psk) {
  const auto& f = openssl();
  const SSL_CIPHER* cipher = f.SSL_CIPHER_find(ssl, aes128gcm_sha256);
  SSL_SESSION* s = cipher ? f.SSL_SESSION_new() : nullptr;
  if (s == nullptr)
    return nullptr;
  if (f.SSL_SESSION_set1_master_key(s, psk, 32) != 1 || f.SSL_SESSION_set_cipher(s, cipher) != 1
      || f.SSL_SESSION_set_protocol_version(s, TLS1_3_VERSION) != 1) {
    f.SSL_SESSION_free(s);
    return nullptr;
  }
  return s;
}

} // namespace

struct callbacks {
  static session& of(SSL* ssl) { return *static_cast<session*>(openssl().SSL_get_ex_data(ssl, 0)); }

  // Client: offer the PSK (OpenSSL owns the session it is given).
  static int use(SSL* ssl, const EVP_MD*, const unsigned char** id, std::size_t* id_size,
                 SSL_SESSION** out) {
    *out = psk_session(ssl, of(ssl).psk_);
    *id = psk_identity;
    *id_size = psk_identity_size;
    return *out != nullptr ? 1 : 0;
  }

  // Server: the PSK for our identity; for any other, none, and with no certificate to fall
  // back on, the handshake fails.
  static int find(SSL* ssl, const unsigned char* id, std::size_t id_size, SSL_SESSION** out) {
    *out = nullptr;
    if (id_size != psk_identity_size || std::memcmp(id, psk_identity, id_size) != 0)
      return 1;
    *out = psk_session(ssl, of(ssl).psk_);
    return *out != nullptr ? 1 : 0;
  }
};

namespace {

// What every context of a link fixes, PSK or certificates.
SSL_CTX* new_context() {
  const auto& f = openssl();
  SSL_CTX* c = f.SSL_CTX_new(f.TLS_method());
  if (c == nullptr)
    return nullptr;
  bool ok = f.SSL_CTX_ctrl(c, SSL_CTRL_SET_MIN_PROTO_VERSION, TLS1_3_VERSION, nullptr) == 1
            && f.SSL_CTX_ctrl(c, SSL_CTRL_SET_MAX_PROTO_VERSION, TLS1_3_VERSION, nullptr) == 1
            && f.SSL_CTX_set_ciphersuites(c, cipher_suites) == 1
            && f.SSL_CTX_ctrl(c, SSL_CTRL_SET_GROUPS_LIST, 0, const_cast<char*>("X25519")) == 1
            && f.SSL_CTX_set_num_tickets(c, 0) == 1;
  if (!ok) {
    f.SSL_CTX_free(c);
    return nullptr;
  }
  // Never SSL_OP_ALLOW_NO_DHE_KEX: every handshake does X25519 besides the PSK, so a key
  // that leaks later does not decrypt what was recorded before.
  f.SSL_CTX_set_options(c, SSL_OP_NO_TICKET);
  return c;
}

SSL_CTX* make_context(role r) {
  const auto& f = openssl();
  SSL_CTX* c = new_context();
  if (c == nullptr)
    return nullptr;
  if (r == role::client) {
    // No trust store: a server offering a certificate instead of the PSK is refused.
    f.SSL_CTX_set_verify(c, SSL_VERIFY_PEER, nullptr);
    f.SSL_CTX_set_psk_use_session_callback(c, &callbacks::use);
  } else {
    f.SSL_CTX_set_psk_find_session_callback(c, &callbacks::find);
  }
  return c;
}

// One context per role and process, made on first use, never freed: sessions share it.
SSL_CTX* context(role r) {
  static SSL_CTX* made[2] = {};
  static std::once_flag once;
  std::call_once(once, [] {
    made[0] = make_context(role::client);
    made[1] = make_context(role::server);
  });
  auto* c = made[r == role::client ? 0 : 1];
  if (c == nullptr)
    unusable("OpenSSL cannot set up TLS 1.3 with a pre-shared key here");
  return c;
}

[[noreturn]] void bad_file(const std::string& why) {
  throw error(make_error(errc::bad_arguments, why), why);
}

[[noreturn]] void unusable_file(const std::string& what, const std::string& path) {
  auto why = "cannot use " + what + " '" + path + "'";
  if (auto e = openssl().ERR_get_error(); e != 0)
    why += ": " + reason_text(e);
  openssl().ERR_clear_error();
  bad_file(why);
}

// A private key others can read is no longer private: refused, as authkey files are.
void check_private(const std::string& key_file) {
  struct stat st{};
  if (::stat(key_file.c_str(), &st) != 0)
    bad_file("cannot use the private key '" + key_file + "': " + std::strerror(errno));
  if ((st.st_mode & 077) != 0)
    bad_file("the private key '" + key_file + "' may be read by group or others: chmod 600 it");
}

} // namespace

void check_available(role r) {
  context(r);
}

certificates::certificates(role r, const std::string& ca_file, const std::string& cert_file,
                           const std::string& key_file)
  : role_(r) {
  const auto& f = openssl();
  check_private(key_file);
  f.ERR_clear_error();
  ctx_.reset(new_context(), [](SSL_CTX* c) { openssl().SSL_CTX_free(c); });
  if (!ctx_)
    unusable("OpenSSL cannot set up TLS 1.3 here");
  auto* c = ctx_.get();
  // An encrypted key would make OpenSSL ask for a passphrase on the terminal: refused.
  f.SSL_CTX_set_default_passwd_cb(c, [](char*, int, int, void*) { return 0; });
  // The CA file may hold an intermediate alone, so one application's CA can sit under a
  // site's root without trusting everything else under it.
  f.X509_VERIFY_PARAM_set_flags(f.SSL_CTX_get0_param(c), X509_V_FLAG_PARTIAL_CHAIN);
  if (f.SSL_CTX_load_verify_locations(c, ca_file.c_str(), nullptr) != 1)
    unusable_file("the CA file", ca_file);
  if (f.SSL_CTX_use_certificate_chain_file(c, cert_file.c_str()) != 1)
    unusable_file("the certificate", cert_file);
  if (f.SSL_CTX_use_PrivateKey_file(c, key_file.c_str(), SSL_FILETYPE_PEM) != 1)
    unusable_file("the private key (not PEM, or encrypted: give it unencrypted, mode 0600)",
                  key_file);
  if (f.SSL_CTX_check_private_key(c) != 1)
    unusable_file("the private key (it does not match the certificate)", key_file);
  // Both ways: a server asks for the client's certificate and refuses a client without one.
  f.SSL_CTX_set_verify(c,
                       r == role::server ? SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT
                                         : SSL_VERIFY_PEER,
                       nullptr);
}

void derive_psk(std::string_view authkey, unsigned char out[32]) {
  constexpr std::string_view salt = "mproc link psk salt";
  unsigned char prk[32];
  crypto::hmac_sha256(salt, reinterpret_cast<const std::uint8_t*>(authkey.data()),
                      authkey.size(), prk);
  constexpr unsigned char info[] = "mproc link psk\x01";  // info | counter 1: one block
  crypto::hmac_sha256({reinterpret_cast<const char*>(prk), sizeof prk}, info, sizeof info - 1,
                      out);
}

session::session(role r, std::string_view authkey) : session(context(r), r) {
  derive_psk(authkey, psk_);
  psk_mode_ = true;
}

session::session(role r, const certificates& c) : session(c.context(), r) {
  if (c.side() != r)
    unusable("certificates loaded for the other side of a connection");
}

session::session(ssl_ctx_st* context, role r) : role_(r) {
  const auto& f = openssl();
  ssl_ = f.SSL_new(context);
  in_ = f.BIO_new(f.BIO_s_mem());
  out_ = f.BIO_new(f.BIO_s_mem());
  if (ssl_ == nullptr || in_ == nullptr || out_ == nullptr) {
    if (in_ != nullptr)
      f.BIO_free(in_);
    if (out_ != nullptr)
      f.BIO_free(out_);
    if (ssl_ != nullptr)
      f.SSL_free(ssl_);
    unusable("OpenSSL cannot make a TLS session (out of memory)");
  }
  f.SSL_set_bio(ssl_, in_, out_);
  f.SSL_set_ex_data(ssl_, 0, this);
  if (r == role::client)
    f.SSL_set_connect_state(ssl_);
  else
    f.SSL_set_accept_state(ssl_);
}

session::~session() {
  std::memset(psk_, 0, sizeof psk_);
  openssl().SSL_free(ssl_);  // and both BIOs
}

session::progress session::handshake(const char* in, std::size_t n, std::string& out) {
  const auto& f = openssl();
  f.ERR_clear_error();
  feed(in, n);
  int rc = f.SSL_do_handshake(ssl_);
  take_output(out);
  if (rc == 1) {
    if (!psk_mode_ || f.SSL_session_reused(ssl_) == 1)
      return progress::done;
    failure_ = "the handshake did not use the authkey";
    return progress::failed;
  }
  if (f.SSL_get_error(ssl_, rc) == SSL_ERROR_WANT_READ)
    return progress::more;
  fail("handshake");
  return progress::failed;
}

session::progress session::await_data(const char* in, std::size_t n, std::string& out) {
  const auto& f = openssl();
  f.ERR_clear_error();
  feed(in, n);
  char first = 0;
  int r = f.SSL_peek(ssl_, &first, 1);
  take_output(out);
  if (r > 0)
    return progress::done;
  if (f.SSL_get_error(ssl_, r) == SSL_ERROR_WANT_READ)
    return progress::more;
  fail("handshake");
  return progress::failed;
}

bool session::seal(const char* p, std::size_t n, std::string& out) {
  const auto& f = openssl();
  f.ERR_clear_error();
  while (n > 0) {
    int w = f.SSL_write(ssl_, p, static_cast<int>(std::min<std::size_t>(n, INT_MAX / 2)));
    if (w <= 0) {
      fail("sending");
      return false;
    }
    p += w;
    n -= static_cast<std::size_t>(w);
  }
  take_output(out);
  return true;
}

void session::feed(const char* p, std::size_t n) {
  if (n > 0)
    openssl().BIO_write(in_, p, static_cast<int>(n));
}

long session::open(char* buf, std::size_t size, std::string& out) {
  const auto& f = openssl();
  f.ERR_clear_error();
  int r = f.SSL_read(ssl_, buf, static_cast<int>(std::min<std::size_t>(size, INT_MAX / 2)));
  take_output(out);
  if (r > 0)
    return r;
  switch (f.SSL_get_error(ssl_, r)) {
  case SSL_ERROR_WANT_READ:
    return 0;
  case SSL_ERROR_ZERO_RETURN:
    failure_ = "the peer ended the TLS session";
    peer_closed_ = true;
    return -1;
  default:
    fail("receiving");
    return -1;
  }
}

bool session::has_input() const {
  const auto& f = openssl();
  return f.SSL_has_pending(ssl_) == 1 || f.BIO_ctrl_pending(in_) > 0;
}

std::string session::description() const {
  const auto& f = openssl();
  const SSL_CIPHER* c = f.SSL_get_current_cipher(ssl_);
  return std::string{"TLSv1.3 "} + (c != nullptr ? f.SSL_CIPHER_get_name(c) : "(none)");
}

void session::take_output(std::string& out) {
  const auto& f = openssl();
  auto n = f.BIO_ctrl_pending(out_);
  if (n == 0)
    return;
  auto at = out.size();
  out.resize(at + n);
  f.BIO_read(out_, out.data() + at, static_cast<int>(n));
}

void session::fail(const char* during) {
  const auto& f = openssl();
  unsigned long first = f.ERR_peek_error();
  auto reason = ERR_GET_REASON(first);
  // For a server: it refused the client's binder or certificate (a client that refuses the
  // server's certificate, by alert, is not guessing anything). For a client: it refused the
  // server's certificate, or the server's alert refused its key or certificate.
  bool refused_theirs = reason == SSL_R_BINDER_DOES_NOT_VERIFY
                        || reason == SSL_R_CERTIFICATE_VERIFY_FAILED
                        || reason == SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE;
  bool mine_refused = reason == SSL_R_TLSV1_ALERT_DECRYPT_ERROR
                      || reason == SSL_R_TLSV1_ALERT_UNKNOWN_CA
                      || reason == SSL_R_SSLV3_ALERT_BAD_CERTIFICATE
                      || reason == SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED;
  wrong_key_ = refused_theirs || (role_ == role::client && mine_refused);
  failure_ = std::string{"TLS "} + during + ": "
             + (first != 0 ? reason_text(first) : std::string{"no detail from OpenSSL"});
  f.ERR_clear_error();
}

} // namespace mproc::detail::tls
