#include "mproc/runtime/internal/libssl.hpp"

#include <dlfcn.h>

#include <mutex>
#include <string>

#include "mproc/runtime/errors.hpp"

namespace mproc::detail {

const libssl& openssl() {
  static libssl fns;
  static std::string problem;
  static std::once_flag once;
  std::call_once(once, [] {
    void* h = ::dlopen("libssl.so.3", RTLD_NOW | RTLD_LOCAL);
    if (h == nullptr) {
      problem = "OpenSSL's libssl (libssl.so.3) cannot be loaded; nodes need it for TCP: "
                "apt-get install libssl3";
      return;
    }
#define MPROC_LIBSSL_FIND(name)                                                                \
  fns.name = reinterpret_cast<decltype(fns.name)>(::dlsym(h, #name));                          \
  if (fns.name == nullptr && problem.empty())                                                  \
    problem = "the libssl.so.3 found lacks " #name;
    MPROC_LIBSSL_FUNCTIONS(MPROC_LIBSSL_FIND)
#undef MPROC_LIBSSL_FIND
  });
  if (!problem.empty())
    throw error(make_error(errc::unreachable, problem), problem);
  return fns;
}

} // namespace mproc::detail
