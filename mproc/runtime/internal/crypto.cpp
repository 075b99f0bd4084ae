#include "mproc/runtime/internal/crypto.hpp"

#include <dlfcn.h>

#include <mutex>
#include <stdexcept>
#include <string>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "mproc/runtime/errors.hpp"

namespace mproc::detail::crypto {

namespace {

// The functions, typed after OpenSSL's own declarations.
struct libcrypto {
  decltype(&::RAND_bytes) rand_bytes = nullptr;
  decltype(&::HMAC) hmac = nullptr;
  decltype(&::EVP_sha256) sha256 = nullptr;
  decltype(&::CRYPTO_memcmp) memcmp = nullptr;
};

template <class F>
bool find(void* lib, const char* name, F& out) {
  out = reinterpret_cast<F>(::dlsym(lib, name));
  return out != nullptr;
}

const libcrypto& lib() {
  static libcrypto fns;
  static std::string problem;
  static std::once_flag once;
  std::call_once(once, [] {
    void* h = nullptr;
    for (const char* so : {"libcrypto.so.3", "libcrypto.so"})
      if ((h = ::dlopen(so, RTLD_NOW | RTLD_LOCAL)) != nullptr)
        break;
    if (h == nullptr) {
      problem = "OpenSSL's libcrypto (libcrypto.so.3) cannot be loaded; nodes need it for "
                "TCP: apt-get install libssl3";
      return;
    }
    if (!find(h, "RAND_bytes", fns.rand_bytes) || !find(h, "HMAC", fns.hmac)
        || !find(h, "EVP_sha256", fns.sha256) || !find(h, "CRYPTO_memcmp", fns.memcmp))
      problem = "the libcrypto found lacks RAND_bytes, HMAC, EVP_sha256 or CRYPTO_memcmp";
  });
  if (!problem.empty())
    throw error(make_error(errc::unreachable, problem), problem);
  return fns;
}

[[noreturn]] void fail(const std::string& why) {
  throw error(make_error(errc::unreachable, why), why);
}

} // namespace

void random_bytes(std::uint8_t* out, std::size_t n) {
  if (lib().rand_bytes(out, static_cast<int>(n)) != 1)
    fail("no random bytes from libcrypto");
}

void hmac_sha256(std::string_view key, const std::uint8_t* message, std::size_t n,
                 std::uint8_t* out) {
  const auto& c = lib();
  unsigned int len = 0;
  if (c.hmac(c.sha256(), key.data(), static_cast<int>(key.size()), message, n, out, &len)
        == nullptr
      || len != 32)
    fail("HMAC-SHA256 failed");
}

bool equal(const void* a, const void* b, std::size_t n) {
  return lib().memcmp(a, b, n) == 0;
}

} // namespace mproc::detail::crypto
