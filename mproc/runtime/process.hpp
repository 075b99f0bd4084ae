// A child process hosting one actor, with Python's multiprocessing.Process interface:
//
//   mproc::process p{node, "worker", {.name = "w-1"}, std::int32_t{42}};
//   p.start();
//   p.join(5s);
//   if (p.exitcode()) ...                 // 0, or 1 after an error, or -SIGKILL ...
//
// The process lives as long as its actor: it exits with code 0 when the actor quits normally
// and 1 when it fails (an error or an exception), like a Python target that returns or raises.
// Handles are cheap to copy and share one state.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include <sys/types.h>

#include <caf/actor.hpp>
#include <caf/message.hpp>

#include "mproc/runtime/sendable.hpp"

namespace mproc {

class node;

namespace detail {
struct process_state;
}

// How a child process is created (Python's start methods):
// - exec: the program is executed again and becomes the child when its main() constructs the
//   node. Always available.
// - forkserver: a server — the program executed once more, up to the construction of its
//   node — forks the child. Several times faster. The child sees what an exec'd child sees
//   (the program as it is when it creates its node; the node's environment, working
//   directory and descriptors 0-2 at the start), except that its credentials, umask, limits
//   and scheduling are those of the moment the server started: use exec for a process that
//   must differ in these.
// A node uses MPROC_START_METHOD ("exec" or "forkserver") when its options name none, else
// forkserver; nodes whose options name another executable always exec.
enum class start_method { exec, forkserver };

struct process_options {
  // Defaults to "Process-N", N counting the processes this node created.
  std::string name;
  // A daemon is stopped when its parent node ends; other children are waited for, as Python
  // does at exit.
  bool daemon = false;
  // How to create this process; empty: the node's (node_options::start_method).
  std::optional<mproc::start_method> start_method;
};

// The registered name of a task function (MPROC_TASK); throws mproc::error
// unknown_actor_name.
std::string task_name(const void* function);

namespace detail {

// The name of the built-in actor that runs a task as a process's target (runtime/task.cpp).
inline constexpr const char* task_actor = "mproc_task";

// The target of a process made from an object (MPROC_PROCESS_CLASS): its run().
template <class T>
void run_object(T object) {
  object.run();
}

// An argument converted to its parameter's type where it is written (implicitly, so a
// conversion the function call itself would refuse does not compile either).
template <class T>
T converted(T value) {
  return value;
}

} // namespace detail

class process {
public:
  template <class... Ts>
  process(node& owner, std::string actor, process_options options, Ts&&... args)
    : process(owner, std::move(actor), std::move(options),
              detail::message_of(std::forward<Ts>(args)...)) {}
  process(node& owner, std::string actor, process_options options, caf::message args);
  // An object whose run() is the target, as an instance of a Python Process subclass: its
  // class registered with MPROC_PROCESS_CLASS (runtime/task.hpp); the object travels to the
  // child as a message (MSGPACK_DEFINE).
  template <class T>
    requires requires(T& t) { t.run(); }
  process(node& owner, T target, process_options options)
    : process(owner, &detail::run_object<T>, std::move(options), std::move(target)) {}
  // A plain function registered with MPROC_TASK (runtime/task.hpp) as the target, as
  // Python's Process(target=f, args=(...)), `args` converted to its parameters here.
  template <class R, class... Params, class... Ts>
    requires(sizeof...(Params) == sizeof...(Ts))
  process(node& owner, R (*target)(Params...), process_options options, Ts&&... args)
    : process(owner, detail::task_actor, std::move(options),
              detail::message_of(task_name(reinterpret_cast<const void*>(target)),
                                 detail::converted<std::decay_t<Params>>(
                                   detail::element_of(std::forward<Ts>(args)))...)) {}

  // Starts the child and waits until its actor runs. Throws mproc::error (unknown_actor_name,
  // bad_arguments, spawn_failed) and std::logic_error when called twice or after close().
  void start();
  // The same without waiting, for actors: `done` gets the error (none when the actor runs).
  // `done` runs on the node's I/O thread (or at once for errors found before the start): keep it
  // short and never block in it — send a message.
  void start(std::function<void(caf::error)> done);
  // Calls `fn(exitcode)` once the process ended (at once if it has), on the I/O thread.
  // Never called for a process that never ran (start failed before it had a pid): start's
  // error says so, and there is no exit code to give.
  void on_exit(std::function<void(int)> fn);
  // Waits for the process to end; true if it did within `timeout` (no timeout: forever).
  // On the node's I/O thread (in its callbacks) it cannot wait: false at once, and a warning.
  // Throws std::logic_error before start(), as Python asserts.
  bool join();
  bool join(std::chrono::milliseconds timeout);
  bool is_alive() const;
  // SIGTERM and SIGKILL. No effect once the process has ended.
  void terminate();
  void kill();

  pid_t pid() const;                   // 0 before start()
  const std::string& name() const;
  bool daemon() const;
  void daemon(bool value);             // before start() only
  // nullopt while running; >= 0 exit status; < 0 the signal that killed it (-9 for SIGKILL).
  std::optional<int> exitcode() const;

  // The actor running in the process (a proxy); invalid before start().
  caf::actor actor() const;

  // Python's sentinel: a descriptor that becomes readable when the process ends, for poll()
  // or mproc::wait() (actors/wait.hpp). Owned by the process (all its handles share it).
  // Throws std::logic_error before the process runs.
  int sentinel() const;
  // Python's close(): releases the sentinel. Throws std::logic_error while the process runs.
  void close();
  // Python's repr(): <Process name='worker' pid=4242 parent=4241 stopped exitcode=-SIGTERM>.
  std::string repr() const;

private:
  friend class node;
  explicit process(std::shared_ptr<detail::process_state> state);

  std::shared_ptr<detail::process_state> state_;
};

std::ostream& operator<<(std::ostream& os, const process& p);

// Python's os.cpu_count(): processors online.
std::size_t cpu_count();
// This process's name: node_options::name in the root, process_options::name in a child.
std::string current_process_name();
// The parent's pid (getppid()).
pid_t parent_pid();

} // namespace mproc
