// Helpers shared by the tests that start processes.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <optional>
#include <source_location>
#include <string>
#include <thread>
#include <vector>

#include "mproc/runtime/node.hpp"

namespace test {

// A root node for one test case (a process hosts one node at a time). On the way out it
// kills the children still running: a failed assertion must not leave the node joining a
// child forever, as Python-style exit would.
class scoped_node {
public:
  explicit scoped_node(mproc::node_options options = {});
  ~scoped_node();
  mproc::node* operator->() { return &node_; }
  mproc::node& operator*() { return node_; }

private:
  mproc::node node_;
};

mproc::node make_node(mproc::node_options options = {});

// Children of this process that are zombies (ended, not reaped).
int zombie_children();

// Children of this process in `state` (a /proc state letter such as 'Z'; 0: any).
std::vector<pid_t> children(char state = 0);

// True while `pid` exists and is not a zombie.
bool running(pid_t pid);

// True once every thread of `pid` is stopped (SIGSTOP takes effect thread by thread: until
// then a thread of the process may still answer a message).
bool all_threads_stopped(pid_t pid);

// The scheduling state of thread `tid` of this process ('R', 'S', ...; 0: unreadable).
char thread_state(pid_t tid);

// True while thread `tid` of this process sleeps in system call `syscall_nr` (SYS_futex,
// SYS_poll ...; /proc/.../syscall needs no kernel symbols, unlike wchan).
bool sleeping_in(pid_t tid, long syscall_nr);

// Entries of a directory: "/proc/self/fd" (descriptors open here), "/dev/shm".
std::size_t entries(const char* dir);

// The mproc::errc that `f` throws, or errc::none.
mproc::errc code_of(const std::function<void()>& f);
// The mproc::error that f throws (a subclass sliced to it); fails the test (Catch FAIL),
// naming the caller's line, when f returns. Anything else f throws propagates: Catch fails
// the test with it.
mproc::error error_of(const std::function<void()>& f,
                      std::source_location where = std::source_location::current());
// What f threw (its what()), or "" when it returned.
std::string failure_of(const std::function<void()>& f);

// Polls `done` until it holds or `timeout` passes.
bool eventually(std::chrono::milliseconds timeout, const std::function<bool()>& done);

// An environment variable set for the guard's lifetime, then as it was.
class scoped_env {
public:
  scoped_env(const char* name, const char* value);
  ~scoped_env();
  scoped_env(const scoped_env&) = delete;
  scoped_env& operator=(const scoped_env&) = delete;

private:
  const char* name_;
  std::optional<std::string> old_;
};

// Stderr of this process and of every process started while it lives, kept in a file. Make
// it before the node: the fork server started with the node keeps the stderr it was given.
class stderr_capture {
public:
  stderr_capture();
  ~stderr_capture();
  stderr_capture(const stderr_capture&) = delete;
  stderr_capture& operator=(const stderr_capture&) = delete;
  std::string text() const;

private:
  int fd_ = -1;
  int saved_ = -1;
  std::string path_;
};

} // namespace test
