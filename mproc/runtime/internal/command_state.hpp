// What a command handle (runtime/command.hpp) shares with the node that reaps it.
#pragma once

#include <sys/types.h>

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>

namespace mproc::detail {

struct command_state {
  pid_t pid = 0;
  int pidfd = -1;            // signals go through it, never to a reused pid; closed with this
  bool new_session = false;
  std::uint64_t token = 0;   // the pidfd in the node's loop (loop thread)
  std::mutex m;              // guards the members below, and reaping
  std::condition_variable cv;
  std::optional<int> returncode;
  bool detached = false;     // the node ended: a handle that waits reaps the program itself

  command_state() = default;
  command_state(const command_state&) = delete;
  command_state& operator=(const command_state&) = delete;
  ~command_state();

  // Under m: reaps the program if it ended (waiting for that with `block`); true once
  // reaped, with returncode set and waiters woken.
  bool reap_locked(bool block);
};

} // namespace mproc::detail
