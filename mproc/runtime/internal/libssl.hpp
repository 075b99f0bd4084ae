// OpenSSL's libssl, loaded on first use rather than linked, for the reason crypto.hpp gives:
// only nodes that talk TCP need it, and linking it would cost every child process its load
// time. The functions are typed after OpenSSL's own declarations, so a mismatch does not
// compile. Macros of OpenSSL's API (SSL_CTX_set_min_proto_version...) are spelt out through
// the functions they stand for (SSL_CTX_ctrl).
#pragma once

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

namespace mproc::detail {

#define MPROC_LIBSSL_FUNCTIONS(X)                                                               \
  X(TLS_method) X(SSL_CTX_new) X(SSL_CTX_free) X(SSL_CTX_ctrl) X(SSL_CTX_set_options)         \
  X(SSL_CTX_set_ciphersuites) X(SSL_CTX_set_num_tickets) X(SSL_CTX_set_verify)                 \
  X(SSL_CTX_set_psk_use_session_callback) X(SSL_CTX_set_psk_find_session_callback)             \
  X(SSL_CTX_use_certificate_chain_file) X(SSL_CTX_use_PrivateKey_file)                         \
  X(SSL_CTX_check_private_key) X(SSL_CTX_load_verify_locations)                                \
  X(SSL_CTX_set_default_passwd_cb) X(SSL_CTX_get0_param) X(X509_VERIFY_PARAM_set_flags)       \
  X(SSL_new) X(SSL_free) X(SSL_set_bio) X(SSL_set_connect_state) X(SSL_set_accept_state)      \
  X(SSL_set_ex_data) X(SSL_get_ex_data) X(SSL_do_handshake) X(SSL_read) X(SSL_peek) X(SSL_write)         \
  X(SSL_get_error) X(SSL_session_reused) X(SSL_has_pending) X(SSL_get_current_cipher)             \
  X(SSL_CIPHER_find) X(SSL_CIPHER_get_name) X(SSL_SESSION_new) X(SSL_SESSION_free)            \
  X(SSL_SESSION_set1_master_key) X(SSL_SESSION_set_cipher) X(SSL_SESSION_set_protocol_version) \
  X(BIO_new) X(BIO_s_mem) X(BIO_read) X(BIO_write) X(BIO_ctrl_pending) X(BIO_free)           \
  X(ERR_get_error) X(ERR_peek_error) X(ERR_clear_error) X(ERR_error_string_n)

struct libssl {
#define MPROC_LIBSSL_MEMBER(name) decltype(&::name) name = nullptr;
  MPROC_LIBSSL_FUNCTIONS(MPROC_LIBSSL_MEMBER)
#undef MPROC_LIBSSL_MEMBER
};

// Loads libssl.so.3 once (X509_VERIFY_PARAM_set_flags comes from its libcrypto, which
// dlsym finds through it): OpenSSL 3 only, since the error codes tls.cpp reads are packed
// differently in 1.1. Throws mproc::error unreachable when it cannot be loaded or lacks a
// function.
const libssl& openssl();

} // namespace mproc::detail
