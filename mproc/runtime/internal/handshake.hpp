// The plaintext handshake (docs/protocol.md, "Handshake"), for clients whose TLS has no
// pre-shared keys, on listeners that allow it: TCP links run TLS (tls.hpp) otherwise. Mutual
// HMAC-SHA256 challenge-response over the shared authkey, fresh random nonces both ways,
// constant-time comparison, fixed-size binary messages, so nothing is parsed before the
// peer has proven it holds the key. The client proves first: a stranger who connects gets
// nothing computed from the key to test guesses against. OpenSSL's libcrypto does the crypto
// (crypto.hpp).
//
//   client -> server  hello     magic(8) | client nonce(32)
//   server -> client  challenge magic(8) | server nonce(32)
//   client -> server  proof     HMAC(K, "mproc client" | Ns | Nc)
//   server -> client  verdict   HMAC(K, "mproc server" | Nc | Ns)
//
// Then both sides speak the framed protocol, in clear.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

namespace mproc::detail::handshake {

constexpr std::size_t nonce_size = 32;
constexpr std::size_t mac_size = 32;
constexpr std::size_t magic_size = 8;
constexpr std::size_t hello_size = magic_size + nonce_size;
constexpr std::size_t challenge_size = magic_size + nonce_size;
constexpr std::size_t proof_size = mac_size;
constexpr std::size_t verdict_size = mac_size;

using nonce = std::array<std::uint8_t, nonce_size>;
using mac = std::array<std::uint8_t, mac_size>;
using bytes_view = std::span<const std::uint8_t>;

// "MPROC", 0, handshake version 2 (1 had the server prove first), flags 0.
extern const std::array<std::uint8_t, magic_size> magic;

// From the OS's CSPRNG (RAND_bytes); throws if it cannot deliver.
nonce fresh_nonce();

mac server_mac(std::string_view key, const nonce& client, const nonce& server);
mac client_mac(std::string_view key, const nonce& server, const nonce& client);
// Constant time (CRYPTO_memcmp).
bool same(const mac& a, bytes_view b);

std::array<std::uint8_t, hello_size> make_hello(const nonce& client);
std::array<std::uint8_t, challenge_size> make_challenge(const nonce& server);
// False when the bytes are not a hello / challenge of this protocol version.
bool read_hello(bytes_view in, nonce& client);
bool read_challenge(bytes_view in, nonce& server);

} // namespace mproc::detail::handshake
