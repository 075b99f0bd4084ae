#include "mproc/runtime/command.hpp"

#include <poll.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>

#include "mproc/runtime/blocking.hpp"
#include "mproc/runtime/deadline.hpp"
#include "mproc/runtime/log.hpp"
#include "mproc/runtime/internal/command_state.hpp"

namespace mproc {

namespace detail {

command_state::~command_state() {
  if (pidfd >= 0)
    ::close(pidfd);
}

bool command_state::reap_locked(bool block) {
  if (returncode)
    return true;
  siginfo_t info{};
  int r;
  while ((r = ::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | (block ? 0 : WNOHANG))) < 0
         && errno == EINTR) {
  }
  if (r < 0) {
    // ECHILD: someone else reaped it (a waitpid(-1) of the program's own); its status is
    // lost, and 0 is what Python's subprocess reports then too. Said, as for processes:
    // check_call would take a program that failed for one that succeeded.
    log::warn("the exit status of program ", pid, " was taken by another waiter (is SIGCHLD ",
              "ignored, or does something call waitpid(-1)?); reporting returncode 0");
    returncode = 0;
  } else if (info.si_pid == 0) {
    return false;  // still running
  } else {
    returncode = info.si_code == CLD_EXITED ? info.si_status : -info.si_status;
  }
  // The pidfd stays open until the state goes: a detached waiter may be polling it.
  cv.notify_all();
  return true;
}

} // namespace detail

int command::exit_fd() const { return s_->pidfd; }

pid_t command::pid() const {
  return s_->pid;
}

std::optional<int> command::returncode() const {
  // Reaped here too, not only by the node's loop: once exit_fd() polls readable the
  // returncode is there, whenever the loop gets round to the same end.
  std::lock_guard guard{s_->m};
  s_->reap_locked(false);
  return s_->returncode;
}

std::optional<int> command::wait(wait_timeout limit) const {
  using clock = std::chrono::steady_clock;
  std::optional<millis> timeout = limit;
  auto deadline = deadline_after(timeout);
  if (deadline == clock::time_point::max())
    timeout.reset();
  std::unique_lock lock{s_->m};
  if (!s_->returncode && (!timeout || timeout->count() > 0))
    will_block();
  while (!s_->returncode) {
    if (!s_->detached) {  // the node's loop reaps it and wakes us
      // It may have ended while the loop is busy elsewhere: asked here too, as Python's
      // wait() does, so that a short timeout does not report a program that ended as running.
      if (s_->reap_locked(false))
        break;
      if (!timeout) {
        s_->cv.wait(lock);
        continue;
      }
      if (s_->cv.wait_until(lock, deadline) == std::cv_status::timeout
          && !s_->reap_locked(false))
        return std::nullopt;
      continue;
    }
    if (s_->reap_locked(false))
      break;
    int ms = poll_ms(deadline);
    if (ms == 0)
      return std::nullopt;
    pollfd p{s_->pidfd, POLLIN, 0};
    lock.unlock();
    ::poll(&p, 1, ms);
    lock.lock();
  }
  return s_->returncode;
}

void command::send_signal(int sig) const {
  std::lock_guard guard{s_->m};
  if (!s_->returncode && s_->pidfd >= 0)
    ::syscall(SYS_pidfd_send_signal, s_->pidfd, sig, nullptr, 0);
}

} // namespace mproc
