// Turning a caller's timeout into a point on the steady clock, the same way everywhere.
#pragma once

#include <chrono>
#include <optional>

namespace mproc {

// A timeout this long is a wait for ever (and `now + milliseconds::max()` would overflow).
inline constexpr std::chrono::milliseconds forever_beyond = std::chrono::hours{24 * 365 * 100};

// No timeout, or one of a century or more, is time_point::max().
inline std::chrono::steady_clock::time_point deadline_after(
    std::optional<std::chrono::milliseconds> timeout) {
  if (!timeout || *timeout >= forever_beyond)
    return std::chrono::steady_clock::time_point::max();
  return std::chrono::steady_clock::now() + *timeout;
}

} // namespace mproc
