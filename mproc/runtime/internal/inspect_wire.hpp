// The introspection sockets' files and bytes: where they are, who may trust them, and one
// length-prefixed frame each way (the link's frame format) holding one msgpack value.
// docs/introspection.md specifies them.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include <sys/types.h>

#include "mproc/serialization/value.hpp"

namespace mproc::detail {

using inspect_clock = std::chrono::steady_clock;

// Largest request a node reads; a snapshot may be larger (a tree of many processes).
inline constexpr std::uint32_t max_inspect_request = 64 * 1024;
inline constexpr std::uint32_t max_inspect_reply = 64 * 1024 * 1024;

// Whether `dir` is a directory of this user's alone (owner, mode 0700 or tighter, not a
// symlink): where introspection sockets may be made, and read from.
bool private_directory(const std::string& dir);

// The pid of a "<pid>.sock" name, else 0.
pid_t socket_pid(const char* name);

// A process with this pid exists in this pid namespace (kill(pid, 0) does not say ESRCH).
bool process_exists(pid_t pid);

// Nobody listens at `path` (its root ended without removing it): a connection is refused.
// A socket whose listener is busy (its backlog full, as a stopped root's) is not stale.
bool stale_socket(const std::string& path);

// A connected, non-blocking socket to `path`, from a listener of this user (SO_PEERCRED),
// retried while the listener's backlog is full until `deadline`. Throws mproc::error:
// unreachable (with the errno's text), timeout.
int connect_inspect_socket(const std::string& path, inspect_clock::time_point deadline);

// The frame holding `v`.
std::string inspect_frame(const value& v);

// On a blocking stream socket, until `deadline`. Throw mproc::error: timeout, closed (EOF
// before a whole frame), bad_message (too large, or not msgpack).
void write_inspect_frame(int fd, const value& v, inspect_clock::time_point deadline);
value read_inspect_frame(int fd, std::uint32_t max, inspect_clock::time_point deadline);

} // namespace mproc::detail
