// Programs that are not mproc nodes, started and reaped by the node: what
// actors/subprocess.hpp (Python's subprocess) stands on.
//
//   mproc::command_spec spec{.argv = {"sort", "-r"}};
//   auto c = node.start_command(spec);   // throws mproc::error spawn_failed naming the path
//   auto code = c.wait(std::nullopt);    // 0, or -9 when killed by SIGKILL
//
// The node forks the program from its I/O thread and reaps it as it does its children: no
// zombie, whoever drops the handle. The program gets descriptors 0-2 (the node's, or those
// of the spec) and nothing else of this process, default signal handling, an empty signal
// mask and the descriptor limit the process started with. It dies with this process
// (PR_SET_PDEATHSIG, which also fires when the node ends in order) unless `new_session`
// starts it in a session of its own, outliving everything here.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "mproc/runtime/deadline.hpp"

namespace mproc {

namespace detail {
struct command_state;
}

struct command_spec {
  // argv[0] names the program: a path (with a '/'), else a name looked up in PATH (the
  // spec's environment's, else this process's), as execvp does.
  std::vector<std::string> argv;
  std::optional<std::string> cwd;
  // The whole environment, "NAME=value" each; unset: this process's.
  std::optional<std::vector<std::string>> env;
  // Descriptors the program gets as 0, 1, 2 (dup'ed; the caller keeps and closes its own).
  // -1: this process's own.
  int stdin_fd = -1;
  int stdout_fd = -1;
  int stderr_fd = -1;
  bool new_session = false;
};

class command {
public:
  using millis = std::chrono::milliseconds;

  pid_t pid() const;
  // Once it ended: its exit code, or minus the signal that killed it (Python's returncode).
  std::optional<int> returncode() const;
  // Until it ends or `limit` passes (nullopt: no limit); its returncode, or nullopt.
  std::optional<int> wait(wait_timeout limit) const;
  // Nothing once it ended and was reaped (a pidfd: never a recycled pid).
  void send_signal(int sig) const;
  // A descriptor that polls readable (POLLIN) once the program has ended, for an event loop
  // of the caller's (its pidfd). Valid while a handle to this command lives; never close it.
  int exit_fd() const;

private:
  friend class node;
  explicit command(std::shared_ptr<detail::command_state> s) : s_{std::move(s)} {}
  std::shared_ptr<detail::command_state> s_;
};

} // namespace mproc
