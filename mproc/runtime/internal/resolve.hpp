// Host names to addresses within a deadline. getaddrinfo blocks for as long as the resolver
// retries (seconds per nameserver that does not answer) and cannot be interrupted, so a name
// is resolved on a thread of its own while the caller waits only until its deadline.
#pragma once

#include <chrono>
#include <memory>
#include <string_view>

struct addrinfo;  // <netdb.h>

namespace mproc::detail {

struct endpoint;

struct addrinfo_deleter {
  void operator()(addrinfo* a) const;
};
using addrinfo_ptr = std::unique_ptr<addrinfo, addrinfo_deleter>;

// When a wait gives up, and what ends it early: `cancel_fd` (-1: nothing) turns readable.
struct due {
  std::chrono::steady_clock::time_point at = std::chrono::steady_clock::time_point::max();
  int cancel_fd = -1;
};

// Whether `fd` is ready for `events` before `by.at` (false: the time passed). Throws
// mproc::error node_shutdown when `by.cancel_fd` turns readable, unreachable (naming
// `doing`) when poll fails. Every wait of a connect goes through here, resolving included.
bool ready_by(int fd, short events, const due& by, std::string_view doing);

// The stream addresses of `at` (passive: for a listening socket). A numeric address is
// resolved at once. Throws mproc::error bad_arguments (no such name, unusable address),
// unreachable (the resolver fails for now, EAI_AGAIN: worth a retry), timeout (no answer
// by `by.at`) or node_shutdown (`by.cancel_fd` readable).
addrinfo_ptr resolve(const endpoint& at, bool passive, const due& by);

} // namespace mproc::detail
