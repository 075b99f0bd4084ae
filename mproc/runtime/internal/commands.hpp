// The programs a node started that are not mproc nodes (runtime/command.hpp). Part of the
// node: forked on its loop thread, which PR_SET_PDEATHSIG ties them to (it fires when the
// thread that forked ends, and the loop's threads live as long as the node); reaped through
// a pidfd in the loop, whoever holds a handle.
#pragma once

#include <sys/resource.h>

#include <memory>
#include <mutex>
#include <unordered_map>

#include "mproc/runtime/command.hpp"
#include "mproc/runtime/internal/command_state.hpp"
#include "mproc/runtime/internal/io_loop.hpp"

namespace mproc::detail {

class command_table {
public:
  explicit command_table(io_loop& loop) : loop_{loop} {}

  // Starts `spec`'s program; throws mproc::error spawn_failed naming the path (or the
  // directory) and the errno, or node_shutdown after finish().
  std::shared_ptr<command_state> start(const command_spec& spec);

  // The node ends (its loop still runs): programs of this session are killed and reaped;
  // those of their own session are left running, their handles reaping them themselves.
  void finish();

private:
  struct launched {
    std::shared_ptr<command_state> state;
    int error_pipe = -1;  // the child's report of a failed chdir or exec; EOF once it ran
  };
  // Loop thread: forks the program and watches its pidfd.
  launched launch(const command_spec& spec, const std::string& path);
  void watch(const std::shared_ptr<command_state>& s);  // loop thread
  void forget(const std::shared_ptr<command_state>& s); // loop thread, once reaped

  io_loop& loop_;
  std::unordered_map<std::uint64_t, std::shared_ptr<command_state>> live_;  // loop thread
  bool finished_ = false;                                                  // loop thread
  std::mutex finish_mtx_;
  bool closing_ = false;  // finish() began: no start may post to the loop any more
};

// The descriptor limit this process started with, before the node raised it (a program
// gets it back). Recorded by raise_descriptor_limit().
const rlimit& original_descriptor_limit();
void raise_descriptor_limit();

// Marks every open descriptor above 2 close-on-exec, one by one as /proc/self/fd lists them
// (without /proc: every number up to the limit): where close_range cannot (Linux before
// 5.11, a seccomp filter). Async-signal-safe (a forked child runs it); false on failure.
bool mark_each_cloexec();

} // namespace mproc::detail
