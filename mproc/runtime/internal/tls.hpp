// TLS 1.3 on a link between nodes, keyed by the authkey as an external pre-shared key
// (RFC 8446 §2.2, RFC 9257): no certificates; a handshake completes only between two holders
// of the key, and each frame after it is encrypted and authenticated.
//
// The session moves no bytes itself: the caller hands it what arrived and sends what it
// appends to `out`, so it fits both a blocking connect and the loop's non-blocking sockets.
// Not thread-safe: one caller at a time (a link holds its lock around every call).
//
// What is fixed (docs/distributed.md, "Encryption"): TLS 1.3 only; TLS_AES_128_GCM_SHA256 or
// TLS_CHACHA20_POLY1305_SHA256; X25519 key exchange with the PSK (forward secrecy: psk_dhe_ke
// only); no session tickets; the PSK is HKDF-SHA256 of the authkey. A client accepts only a
// handshake that used the PSK, so a server without the key cannot finish one with a
// certificate instead. With `certificates` instead of the authkey (a site with a PKI), both
// sides present a certificate and accept only one their CA signed; the rest is the same.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

struct ssl_st;  // OpenSSL's SSL, SSL_CTX and BIO, kept out of this header's includes
struct ssl_ctx_st;
struct bio_st;

namespace mproc::detail::tls {

enum class role { client, server };

// Certificate files (PEM), loaded once into a context the sessions made from it share.
class certificates {
public:
  // Throws mproc::error bad_arguments naming what cannot be used (a missing or unreadable
  // file, not PEM, a key that does not match the certificate, a key file that group or
  // others may read), unreachable without libssl.
  certificates(role r, const std::string& ca_file, const std::string& cert_file,
               const std::string& key_file);
  ssl_ctx_st* context() const { return ctx_.get(); }
  role side() const { return role_; }

private:
  std::shared_ptr<ssl_ctx_st> ctx_;
  role role_;
};

class session {
public:
  using role = tls::role;
  // Throws mproc::error unreachable when libssl cannot be loaded or set up.
  session(role r, std::string_view authkey);
  // `c` must have been loaded for `r` (a server's context also demands the client's).
  session(role r, const certificates& c);
  ~session();
  session(const session&) = delete;
  session& operator=(const session&) = delete;

  enum class progress { done, more, failed };
  // Feeds the bytes received (none, for a client's first call) and appends what to send to
  // `out`; `done` may still leave bytes in `out` that must go before any record.
  progress handshake(const char* in, std::size_t n, std::string& out);
  // Client, after `done`: feeds what arrived until the server's first application data, which
  // stays for open(). A TLS 1.3 server checks a client's certificate after the client has
  // finished, so only this says that it was accepted.
  progress await_data(const char* in, std::size_t n, std::string& out);
  // After `failed`: why, and whether the peer's key or certificate was refused (rather than
  // the peer not speaking TLS, or refusing ours).
  const std::string& failure() const { return failure_; }
  bool wrong_key() const { return wrong_key_; }

  // After the handshake. Appends [p, p + n) encrypted to `out`; false when broken.
  bool seal(const char* p, std::size_t n, std::string& out);
  // Received records; `open` then takes out their plaintext.
  void feed(const char* p, std::size_t n);
  // Plaintext into [buf, buf + size): the count; 0 when more must be fed first; -1 when the
  // peer ended the session (peer_closed()) or sent what does not decrypt (failure()). A
  // record that needs an answer (a key update) appends it to `out`.
  long open(char* buf, std::size_t size, std::string& out);
  bool peer_closed() const { return peer_closed_; }
  // Fed bytes not yet opened: worth an open() before waiting for the socket.
  bool has_input() const;
  // "TLSv1.3 TLS_AES_128_GCM_SHA256", for logs and tests.
  std::string description() const;

private:
  friend struct callbacks;
  explicit session(ssl_ctx_st* context, role r);
  void take_output(std::string& out);
  void fail(const char* during);

  ssl_st* ssl_ = nullptr;
  bio_st* in_ = nullptr;   // owned by ssl_
  bio_st* out_ = nullptr;  // owned by ssl_
  unsigned char psk_[32] = {};
  bool psk_mode_ = false;  // a handshake must have used the PSK
  role role_;
  std::string failure_;
  bool wrong_key_ = false;
  bool peer_closed_ = false;
};

// Loads libssl and sets up TLS for `r` now, so a listener fails at start rather than at
// every connection. Throws mproc::error unreachable.
void check_available(session::role r);

// What the PSK is made of: HKDF-SHA256 (RFC 5869) with a fixed salt and label, so the
// authkey itself never keys anything but this derivation.
void derive_psk(std::string_view authkey, unsigned char out[32]);

} // namespace mproc::detail::tls
