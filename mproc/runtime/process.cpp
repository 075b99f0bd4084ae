#include "mproc/runtime/process.hpp"

#include <sys/syscall.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <mutex>
#include <stdexcept>

#include "mproc/runtime/actor_registry.hpp"
#include "mproc/runtime/internal/node_impl.hpp"
#include "mproc/runtime/node.hpp"

namespace mproc {

namespace detail {

void process_state::signal_locked(int sig) {
  if (pidfd >= 0)
    ::syscall(SYS_pidfd_send_signal, pidfd, sig, nullptr, 0);
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
  state_->actor_name = std::move(actor);
  state_->args = std::move(args);
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
  std::fflush(nullptr);
}

} // namespace

void process::start() {
  using phase = detail::process_state::phase;
  {
    std::lock_guard guard{state_->mtx};
    if (state_->state != phase::created)
      throw std::logic_error("process '" + state_->name + "' cannot be started twice");
    state_->state = phase::starting;
  }
  auto& owner = *state_->owner;
  // Checked here first: the same binary runs in the child, so the answer is the same, and a
  // typo costs no fork.
  auto problem = detail::check_spawn(state_->actor_name, state_->args);
  if (!problem) {
    flush_output();
    owner.start_process(state_);
    std::lock_guard guard{state_->mtx};
    problem = state_->start_error;
  } else {
    std::lock_guard guard{state_->mtx};
    state_->start_error = problem;
    state_->state = phase::ended;
  }
  if (problem)
    throw error(problem, "cannot start process '" + state_->name + "': "
                           + owner.system().render(problem));
}

void process::start(std::function<void(caf::error)> done) {
  using phase = detail::process_state::phase;
  {
    std::lock_guard guard{state_->mtx};
    if (state_->state != phase::created)
      throw std::logic_error("process '" + state_->name + "' cannot be started twice");
    state_->state = phase::starting;
    state_->on_started = std::move(done);
  }
  if (auto problem = detail::check_spawn(state_->actor_name, state_->args)) {
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

bool process::join() {
  std::unique_lock lock{state_->mtx};
  state_->changed.wait(lock, [&] { return !state_->alive(); });
  return true;
}

bool process::join(std::chrono::milliseconds timeout) {
  std::unique_lock lock{state_->mtx};
  return state_->changed.wait_for(lock, timeout, [&] { return !state_->alive(); });
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
