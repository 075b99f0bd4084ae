#include "runtime/authkey.hpp"

#include <sys/stat.h>

#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <iterator>

#include "runtime/errors.hpp"
#include "runtime/internal/crypto.hpp"

namespace mproc {

namespace {

[[noreturn]] void refuse(const std::string& why) {
  throw error(make_error(errc::bad_arguments, why), why);
}

std::string checked(std::string secret, const std::string& source) {
  while (!secret.empty() && (secret.back() == '\n' || secret.back() == '\r'))
    secret.pop_back();
  if (secret.size() < authkey::min_size)
    refuse("the authkey from " + source + " has " + std::to_string(secret.size())
           + " bytes; at least " + std::to_string(authkey::min_size) + " are needed");
  return secret;
}

} // namespace

authkey authkey::from_file(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0)
    refuse("cannot read the authkey file '" + path + "'");
  if ((st.st_mode & 077) != 0)
    refuse("the authkey file '" + path + "' is readable by others: chmod 600 it");
  std::ifstream in{path, std::ios::binary};
  if (!in)
    refuse("cannot read the authkey file '" + path + "'");
  std::string secret{std::istreambuf_iterator<char>{in}, {}};
  return authkey{checked(std::move(secret), "'" + path + "'")};
}

authkey authkey::from_env(const char* variable) {
  const char* value = std::getenv(variable);
  if (value == nullptr)
    refuse(std::string{"$"} + variable + " is not set");
  return authkey{checked(value, std::string{"$"} + variable)};
}

authkey authkey::from_string(std::string secret) {
  return authkey{checked(std::move(secret), "the program")};
}

authkey authkey::generate() {
  static constexpr char alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::uint8_t raw[32];
  detail::crypto::random_bytes(raw, sizeof raw);
  std::string secret;
  for (auto b : raw)
    secret += alphabet[b % 64];
  return authkey{secret};
}

} // namespace mproc
