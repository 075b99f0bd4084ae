// The authentication that opens every TCP connection between nodes (docs/protocol.md,
// "Handshake"): mutual HMAC-SHA256 challenge-response over a shared authkey, fresh random
// nonces both ways, constant-time comparison. Fixed-size binary messages, so nothing is
// parsed before the peer has proven it holds the key. OpenSSL's libcrypto does the crypto
// (crypto.hpp).
//
//   client -> server  hello     magic(8) | client nonce(32)
//   server -> client  challenge magic(8) | server nonce(32) | HMAC(K, "mproc server" | Nc | Ns)
//   client -> server  proof     HMAC(K, "mproc client" | Ns | Nc)
//   server -> client  verdict   0x01
//
// Then both sides speak the framed protocol. The transcript is over a byte stream, so TLS
// can later wrap the socket before the first byte without changing it.
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
constexpr std::size_t challenge_size = magic_size + nonce_size + mac_size;
constexpr std::size_t proof_size = mac_size;
constexpr std::size_t verdict_size = 1;
constexpr std::uint8_t accepted = 0x01;

using nonce = std::array<std::uint8_t, nonce_size>;
using mac = std::array<std::uint8_t, mac_size>;
using bytes_view = std::span<const std::uint8_t>;

// "MPROC", 0, protocol version 1, flags 0.
extern const std::array<std::uint8_t, magic_size> magic;

// From the OS's CSPRNG (RAND_bytes); throws if it cannot deliver.
nonce fresh_nonce();

mac server_mac(std::string_view key, const nonce& client, const nonce& server);
mac client_mac(std::string_view key, const nonce& server, const nonce& client);
// Constant time (CRYPTO_memcmp).
bool same(const mac& a, bytes_view b);

std::array<std::uint8_t, hello_size> make_hello(const nonce& client);
std::array<std::uint8_t, challenge_size> make_challenge(std::string_view key, const nonce& client,
                                                        const nonce& server);
// False when the bytes are not a hello / challenge of this protocol version.
bool read_hello(bytes_view in, nonce& client);
bool read_challenge(bytes_view in, nonce& server, mac& proof_of_key);

} // namespace mproc::detail::handshake
