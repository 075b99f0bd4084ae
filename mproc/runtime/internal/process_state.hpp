// What a process handle and the node's I/O thread share about one child process.
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <sys/types.h>

#include <caf/actor.hpp>
#include <caf/error.hpp>
#include <caf/message.hpp>

#include "mproc/runtime/process.hpp"

namespace mproc::detail {

class node_impl;
class peer;

struct process_state {
  enum class phase { created, starting, running, ended };

  node_impl* owner = nullptr;
  std::uint64_t owner_id = 0;  // node_impl::alive(owner, owner_id) before owner is used
  std::string actor_name;
  std::string target;  // what it runs, for introspection: the actor, or a function's task
  caf::message args;
  std::string name;
  bool daemon = false;
  std::optional<start_method> method;  // empty: the node's
  std::optional<start_method> started_by;  // once it has a pid: a fork server's may fall back

  mutable std::mutex mtx;
  std::condition_variable changed;
  phase state = phase::created;
  pid_t pid = 0;
  int pidfd = -1;                    // open from spawn until reaped; signals go through it
  std::optional<int> exitcode;       // Python's convention: < 0 is the killing signal
  caf::actor actor;                  // the proxy of the child's main actor
  caf::error start_error;            // why start() failed
  std::shared_ptr<peer> link;        // to the child node, until it closes
  // Called once on the I/O thread: when start() settled, and when the process was reaped.
  std::function<void(caf::error)> on_started;
  std::vector<std::function<void(int)>> on_exit;
  // Loop thread only:
  std::uint64_t pidfd_token = 0;     // the pidfd's registration in the loop
  std::uint64_t start_timer = 0;     // fails a start that hangs
  std::uint64_t settle_timer = 0;    // gives up waiting for the exit status of a closed link
  std::string link_closed_why;       // the link closed before the process was reaped
  // An introspection question sent to its node and not answered yet (node_inspect.cpp).
  std::shared_ptr<std::atomic<bool>> inspect_pending = std::make_shared<std::atomic<bool>>(false);

  bool alive() const { return state == phase::starting || state == phase::running; }
  // start() is answered: the actor runs, or it never will. Not the same as the OS process
  // phase: a child may be reaped before its link's failure reaches the start callback.
  bool start_settled() const { return actor || start_error; }
  // mtx held. Sends `sig` through the pidfd, so never to a recycled pid; no effect once
  // the process was reaped. While it starts and has no pid yet (a fork server's answer on
  // its way), the signal waits in `pending_signal` for attach(), which sends it.
  void signal_locked(int sig);
  int pending_signal = 0;  // SIGKILL wins over SIGTERM

  int sentinel = -1;    // process::sentinel()'s descriptor, made on first use
  bool closed = false;  // process::close() was called

  process_state() = default;
  process_state(const process_state&) = delete;
  process_state& operator=(const process_state&) = delete;
  ~process_state();
};

} // namespace mproc::detail
