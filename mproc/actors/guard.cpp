#include "mproc/actors/guard.hpp"

#include "mproc/runtime/log.hpp"

namespace mproc::detail {

void throw_acquire_timeout(const char* what) {
  std::string text = std::string{"could not acquire the "} + what + " in time";
  throw mproc::error{make_error(errc::timeout, text), text};
}

void throw_misuse(const std::string& text) {
  throw mproc::error{make_error(errc::bad_arguments, text), text};
}

void report_failed_release(const char* what, const std::exception& e) noexcept {
  try {
    log::warn("the ", what, " held for a scope could not be released at its end (", e.what(),
              "): another thread or process released it first");
  } catch (...) {
  }
}

} // namespace mproc::detail
