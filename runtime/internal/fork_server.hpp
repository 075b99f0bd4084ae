// Start method "forkserver": a single-threaded copy of this program, forked when the node
// is created (before the node starts any thread), that forks each new child on request.
// A fork of a small idle process costs a tenth of a millisecond; an exec of the program,
// its loading and static initialisation cost milliseconds.
//
// The server forks with CLONE_PARENT, so each child is the node's own child, exactly as an
// exec'd one: the node reaps it, learns its exit status and signals it through a pidfd, and
// the child dies with the node (PR_SET_PDEATHSIG). The server's own death costs nothing but
// the fast start: the node starts its next children by exec.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include <sys/types.h>

#include "runtime/internal/spawner.hpp"

namespace mproc::detail {

class fork_server {
public:
  // Runs in a new child, connected to its parent on child_link_fd, and never returns.
  using child_main = std::function<void(const child_args&)>;

  // Forks the server, which keeps `run` for its children. nullptr when it cannot work here:
  // this process already runs more than one thread (a fork would copy their locks), or
  // this C library's thread layout is not the one expected.
  static std::unique_ptr<fork_server> start(child_main run);

  // Ends the server and reaps it. Children it started live on.
  ~fork_server();
  fork_server(const fork_server&) = delete;
  fork_server& operator=(const fork_server&) = delete;

  // Starts a child node named `name` with this process's current environment and working
  // directory. Thread-safe. Throws std::system_error; after an error that says the server
  // is gone (or hung), alive() is false and the server has been reaped.
  // A server that has not answered within `timeout` is taken for hung.
  spawned_child spawn(const std::string& name, std::chrono::milliseconds timeout);
  bool alive() const;
  pid_t pid() const { return pid_; }

private:
  fork_server(pid_t pid, int control) : pid_(pid), control_(control) {}
  void bury();  // mtx_ held

  pid_t pid_;
  int control_;
  mutable std::mutex mtx_;
  bool dead_ = false;
};

} // namespace mproc::detail
