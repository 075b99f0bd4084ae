// The three primitives the node handshake needs, from OpenSSL's libcrypto — loaded on first
// use rather than linked: every process of an application would otherwise map and relocate
// libcrypto at start, which cost each child process ~4 ms here, while only nodes that talk
// TCP need it. Throws mproc::error (unreachable) when libcrypto cannot be loaded.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace mproc::detail::crypto {

// From OpenSSL's CSPRNG (RAND_bytes).
void random_bytes(std::uint8_t* out, std::size_t n);
// HMAC-SHA256(key, message) into out[32].
void hmac_sha256(std::string_view key, const std::uint8_t* message, std::size_t n,
                 std::uint8_t* out);
// Constant-time equality (CRYPTO_memcmp).
bool equal(const void* a, const void* b, std::size_t n);

} // namespace mproc::detail::crypto
