#include "mproc/runtime/process.hpp"

#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <mutex>
#include <ostream>
#include <stdexcept>
#include <system_error>

#include "mproc/runtime/actor_registry.hpp"
#include "mproc/runtime/blocking.hpp"
#include "mproc/runtime/deadline.hpp"
#include "mproc/runtime/internal/node_impl.hpp"
#include "mproc/runtime/log.hpp"
#include "mproc/runtime/node.hpp"
#include "mproc/serialization/value.hpp"

namespace mproc {

namespace detail {

void process_state::signal_locked(int sig) {
  if (pidfd >= 0)
    ::syscall(SYS_pidfd_send_signal, pidfd, sig, nullptr, 0);
  else if (state == phase::starting && pending_signal != SIGKILL)
    pending_signal = sig;
}

process_state::~process_state() {
  if (sentinel >= 0)
    ::close(sentinel);
}

namespace {
std::mutex current_name_mtx;
std::string current_name = "MainProcess";
} // namespace

void set_current_process_name(const std::string& name) {
  std::lock_guard guard{current_name_mtx};
  current_name = name;
}

} // namespace detail

process::process(node& owner, std::string actor, process_options options, caf::message args)
  : state_(std::make_shared<detail::process_state>()) {
  state_->owner = owner.impl_.get();
  state_->owner_id = owner.impl_->id();
  state_->actor_name = std::move(actor);
  state_->args = std::move(args);
  // A function target runs the task actor: what it runs is its first argument, the task.
  state_->target = state_->actor_name;
  if (state_->actor_name == detail::task_actor && state_->args.match_element<std::string>(0))
    state_->target = state_->args.get_as<std::string>(0);
  state_->name = options.name.empty() ? owner.impl_->next_process_name() : std::move(options.name);
  state_->daemon = options.daemon;
  state_->method = options.start_method;
}

process::process(std::shared_ptr<detail::process_state> state) : state_(std::move(state)) {}

namespace {

// What this process printed so far goes out before the child can print, as Python's start()
// does: a program's lines keep their order even when its stdout is a pipe or a file
// (buffered), and a child forked from a copy never repeats them.
void flush_output() {
  std::cout.flush();  // its own buffer without sync_with_stdio
  std::fflush(stdout);
  std::fflush(stderr);  // not fflush(nullptr): it locks every stream, stdin too (a reader)
}

// What start() refuses before anything is forked: an unknown actor, arguments it does not
// take, a name the child's command line (or the fork server's request) cannot carry.
caf::error check_start(const detail::process_state& s) {
  if (!detail::node_impl::alive(s.owner, s.owner_id))
    return make_error(errc::node_shutdown, "its node has ended");
  if (s.name.find('\0') != std::string::npos)
    return make_error(errc::bad_arguments, "a process name cannot contain a NUL byte");
  return detail::check_spawn(s.actor_name, s.args);
}

// Rendered by its node, unless that node is gone (a handle kept past it).
std::string problem_text(const detail::process_state& s, const caf::error& e) {
  if (!detail::node_impl::alive(s.owner, s.owner_id))
    return "mproc:node_shutdown: its node has ended";
  return s.owner->system().render(e);
}

// Python's ValueError ("process object is closed") and "cannot start a process twice".
void refuse_start_locked(const detail::process_state& state) {
  if (state.closed)
    throw std::logic_error("process '" + state.name + "' is closed: it cannot be started");
  if (state.state != detail::process_state::phase::created)
    throw std::logic_error("process '" + state.name + "' cannot be started twice");
}

// Python asserts "can only join a started process": joining one never started is a bug
// that would otherwise pass unseen (join true, no exit code).
void refuse_join_locked(const detail::process_state& state) {
  if (state.state == detail::process_state::phase::created)
    throw std::logic_error("process '" + state.name + "' cannot be joined before start()");
}

} // namespace

void process::start() {
  using phase = detail::process_state::phase;
  {
    std::lock_guard guard{state_->mtx};
    refuse_start_locked(*state_);
    state_->state = phase::starting;
  }
  // Checked here first: the same binary runs in the child, so the answer is the same, and a
  // typo costs no fork.
  auto problem = check_start(*state_);
  if (!problem) {
    flush_output();
    state_->owner->start_process(state_);
    std::lock_guard guard{state_->mtx};
    problem = state_->start_error;
  } else {
    std::lock_guard guard{state_->mtx};
    state_->start_error = problem;
    state_->state = phase::ended;
  }
  if (problem)
    throw error(problem, "cannot start process '" + state_->name + "': "
                           + problem_text(*state_, problem));
}

void process::start(std::function<void(caf::error)> done) {
  using phase = detail::process_state::phase;
  {
    std::lock_guard guard{state_->mtx};
    refuse_start_locked(*state_);
    state_->state = phase::starting;
    state_->on_started = std::move(done);
  }
  if (auto problem = check_start(*state_)) {
    std::function<void(caf::error)> callback;
    {
      std::lock_guard guard{state_->mtx};
      state_->start_error = problem;
      state_->state = phase::ended;
      callback = std::move(state_->on_started);
    }
    callback(std::move(problem));
    return;
  }
  flush_output();
  state_->owner->start_process_async(state_);
}

void process::on_exit(std::function<void(int)> fn) {
  std::optional<int> code;
  {
    std::lock_guard guard{state_->mtx};
    if (state_->state != detail::process_state::phase::ended || !state_->exitcode) {
      state_->on_exit.push_back(std::move(fn));
      return;
    }
    code = state_->exitcode;
  }
  fn(*code);
}

// join() in a callback of the node's I/O thread (on_exit, start(done), a functor attached
// to a proxy) would wait for the loop it holds: the node would hang for good. It returns
// false at once there instead; an exception would end the process.
namespace {
bool join_refused_here(const detail::process_state& state) {
  if (!state.owner->loop().in_loop())
    return false;
  log::warn("process::join() of '", state.name,
                    "' on mproc's I/O thread cannot wait for it: use on_exit()");
  return true;
}
} // namespace

bool process::join() {
  std::unique_lock lock{state_->mtx};
  refuse_join_locked(*state_);
  if (state_->alive() && join_refused_here(*state_))
    return false;
  if (state_->alive())
    will_block();  // the node's loop settles its end
  state_->changed.wait(lock, [&] { return !state_->alive(); });
  return true;
}

bool process::join(std::chrono::milliseconds timeout) {
  auto deadline = deadline_after(timeout);  // a century or more is for ever: no overflow
  if (deadline == std::chrono::steady_clock::time_point::max())
    return join();
  std::unique_lock lock{state_->mtx};
  refuse_join_locked(*state_);
  if (state_->alive() && timeout.count() > 0 && join_refused_here(*state_))
    return false;  // a poll (no timeout) is fine there
  if (state_->alive() && timeout.count() > 0)
    will_block();
  return state_->changed.wait_until(lock, deadline, [&] { return !state_->alive(); });
}

bool process::is_alive() const {
  std::lock_guard guard{state_->mtx};
  return state_->pid != 0 && state_->alive();
}

void process::terminate() {
  std::lock_guard guard{state_->mtx};
  state_->signal_locked(SIGTERM);
}

void process::kill() {
  std::lock_guard guard{state_->mtx};
  state_->signal_locked(SIGKILL);
}

pid_t process::pid() const {
  std::lock_guard guard{state_->mtx};
  return state_->pid;
}

const std::string& process::name() const {
  return state_->name;  // immutable after construction
}

bool process::daemon() const {
  std::lock_guard guard{state_->mtx};
  return state_->daemon;
}

void process::daemon(bool value) {
  std::lock_guard guard{state_->mtx};
  if (state_->state != detail::process_state::phase::created)
    throw std::logic_error("process '" + state_->name + "': daemon can only be set before start()");
  state_->daemon = value;
}

std::optional<int> process::exitcode() const {
  std::lock_guard guard{state_->mtx};
  return state_->exitcode;
}

caf::actor process::actor() const {
  std::lock_guard guard{state_->mtx};
  return state_->actor;
}

int process::sentinel() const {
  std::lock_guard guard{state_->mtx};
  if (state_->sentinel >= 0)
    return state_->sentinel;
  if (state_->closed)
    throw std::logic_error("process '" + state_->name + "' is closed");
  if (state_->pidfd >= 0)  // a pidfd is readable once its process ended, reaped or not
    state_->sentinel = ::fcntl(state_->pidfd, F_DUPFD_CLOEXEC, 0);
  else if (state_->state == detail::process_state::phase::ended || state_->exitcode)
    state_->sentinel = ::eventfd(1, EFD_CLOEXEC);  // reaped (its end still being settled,
                                                   // maybe): readable at once
  else
    throw std::logic_error("process '" + state_->name + "' has no sentinel before it runs");
  if (state_->sentinel < 0)
    throw std::system_error(errno, std::generic_category(), "sentinel");
  return state_->sentinel;
}

void process::close() {
  std::lock_guard guard{state_->mtx};
  if (state_->alive())
    throw std::logic_error("process '" + state_->name
                           + "' is still running: join() or terminate() it before close()");
  if (state_->sentinel >= 0)
    ::close(state_->sentinel);
  state_->sentinel = -1;
  state_->closed = true;
}

std::string process::repr() const {
  std::lock_guard guard{state_->mtx};
  using phase = detail::process_state::phase;
  std::string out = "<Process name=" + value{state_->name}.repr();
  if (state_->pid != 0)
    out += " pid=" + std::to_string(state_->pid);
  out += " parent=" + std::to_string(::getpid());  // handles live in the parent
  bool ran = state_->pid != 0;  // a start() that failed before the fork never ran
  bool stopped = ran && state_->state == phase::ended;
  bool initial = state_->state == phase::created || (!ran && state_->state == phase::ended);
  out += state_->closed ? " closed" : initial ? " initial" : stopped ? " stopped" : " started";
  if (stopped && state_->exitcode) {
    auto code = *state_->exitcode;
    const char* sig = code < 0 ? sigabbrev_np(-code) : nullptr;
    out += " exitcode=" + (sig ? std::string{"-SIG"} + sig : std::to_string(code));
  }
  if (state_->daemon)
    out += " daemon";
  return out + ">";
}

std::ostream& operator<<(std::ostream& os, const process& p) {
  return os << p.repr();
}

std::size_t cpu_count() {
  auto n = ::sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? static_cast<std::size_t>(n) : 1;
}

std::string current_process_name() {
  std::lock_guard guard{detail::current_name_mtx};
  return detail::current_name;
}

pid_t parent_pid() {
  return ::getppid();
}

} // namespace mproc
