#include "mproc/runtime/authkey.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <set>

#include "mproc/runtime/errors.hpp"
#include "mproc/runtime/internal/crypto.hpp"

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
  auto variety = std::set<char>(secret.begin(), secret.end()).size();
  if (variety < authkey::min_variety)
    refuse("the authkey from " + source + " has only " + std::to_string(variety)
           + " different bytes; at least " + std::to_string(authkey::min_variety)
           + " are needed (make one: head -c 32 /dev/urandom | base64)");
  return secret;
}

} // namespace

authkey authkey::from_file(const std::string& path) {
  // Checked and read through one descriptor: the file whose mode was checked is the one read.
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  struct stat st {};
  if (fd < 0 || ::fstat(fd, &st) != 0) {
    if (fd >= 0)
      ::close(fd);
    refuse("cannot read the authkey file '" + path + "'");
  }
  std::string secret;
  char buf[4096];
  ssize_t n = 0;
  while ((st.st_mode & 077) == 0 && (n = ::read(fd, buf, sizeof buf)) > 0)
    secret.append(buf, static_cast<std::size_t>(n));
  ::close(fd);
  if ((st.st_mode & 077) != 0)
    refuse("the authkey file '" + path + "' is readable by others: chmod 600 it");
  if (n < 0)
    refuse("cannot read the authkey file '" + path + "'");
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
