#include "mproc/runtime/internal/handshake.hpp"

#include <algorithm>
#include <stdexcept>

#include "mproc/runtime/internal/crypto.hpp"

namespace mproc::detail::handshake {

const std::array<std::uint8_t, magic_size> magic = {'M', 'P', 'R', 'O', 'C', 0, 2, 0};

namespace {

// HMAC-SHA256(key, label | a | b)
mac hmac(std::string_view key, std::string_view label, const nonce& a, const nonce& b) {
  std::array<std::uint8_t, 16 + 2 * nonce_size> msg{};
  auto end = std::copy(label.begin(), label.end(), msg.begin());
  end = std::copy(a.begin(), a.end(), end);
  end = std::copy(b.begin(), b.end(), end);
  mac out{};
  crypto::hmac_sha256(key, msg.data(), static_cast<std::size_t>(end - msg.begin()), out.data());
  return out;
}

bool has_magic(bytes_view in) {
  return in.size() >= magic_size && std::equal(magic.begin(), magic.end(), in.begin());
}

} // namespace

nonce fresh_nonce() {
  nonce n{};
  crypto::random_bytes(n.data(), n.size());
  return n;
}

mac server_mac(std::string_view key, const nonce& client, const nonce& server) {
  return hmac(key, "mproc server", client, server);
}

mac client_mac(std::string_view key, const nonce& server, const nonce& client) {
  return hmac(key, "mproc client", server, client);
}

bool same(const mac& a, bytes_view b) {
  return b.size() == a.size() && crypto::equal(a.data(), b.data(), a.size());
}

std::array<std::uint8_t, hello_size> make_hello(const nonce& client) {
  std::array<std::uint8_t, hello_size> out{};
  auto end = std::copy(magic.begin(), magic.end(), out.begin());
  std::copy(client.begin(), client.end(), end);
  return out;
}

std::array<std::uint8_t, challenge_size> make_challenge(const nonce& server) {
  std::array<std::uint8_t, challenge_size> out{};
  auto end = std::copy(magic.begin(), magic.end(), out.begin());
  std::copy(server.begin(), server.end(), end);
  return out;
}

bool read_hello(bytes_view in, nonce& client) {
  if (in.size() != hello_size || !has_magic(in))
    return false;
  std::copy_n(in.begin() + magic_size, nonce_size, client.begin());
  return true;
}

bool read_challenge(bytes_view in, nonce& server) {
  if (in.size() != challenge_size || !has_magic(in))
    return false;
  std::copy_n(in.begin() + magic_size, nonce_size, server.begin());
  return true;
}

} // namespace mproc::detail::handshake
