#include "mproc/actors/guard.hpp"

namespace mproc::detail {

void throw_acquire_timeout(const char* what) {
  std::string text = std::string{"could not acquire the "} + what + " in time";
  throw mproc::error{make_error(errc::timeout, text), text};
}

void throw_misuse(const std::string& text) {
  throw mproc::error{make_error(errc::bad_arguments, text), text};
}

} // namespace mproc::detail
