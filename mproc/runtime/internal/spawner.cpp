#include "mproc/runtime/internal/spawner.hpp"

#include "mproc/runtime/log.hpp"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <system_error>
#include <vector>

namespace mproc::detail {

namespace {

[[noreturn]] void throw_errno(int err, const std::string& what) {
  throw std::system_error(err, std::generic_category(), what);
}

int pidfd_open(pid_t pid) {
  return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
}

} // namespace

std::optional<child_args> parse_child_args(int argc, char** argv) {
  if (argc < 4 || std::strcmp(argv[1], child_flag) != 0)
    return std::nullopt;
  child_args out;
  out.parent = static_cast<pid_t>(std::strtol(argv[2], nullptr, 10));
  out.name = argv[3];
  return out;
}

pid_t spawn_program(const std::string& executable, const std::vector<std::string>& args,
                    char* const* env, int fd, spawn_io io) {
  // fd 3 itself would keep its FD_CLOEXEC through the dup2 onto fd 3: a copy goes instead.
  int moved = fd == child_link_fd ? ::fcntl(fd, F_DUPFD_CLOEXEC, child_link_fd + 1) : fd;
  std::vector<char*> argv;
  for (const auto& a : args)
    argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, moved, child_link_fd);
  posix_spawn_file_actions_addclosefrom_np(&actions, child_link_fd + 1);
  if (io == spawn_io::server)
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &all);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);

  pid_t pid = 0;
  int err = ::posix_spawn(&pid, executable.c_str(), &actions, &attr, argv.data(), env);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (moved != fd)
    ::close(moved);
  if (err != 0)
    throw_errno(err, "cannot execute " + executable);
  return pid;
}

spawned_child spawn_child(const std::string& executable, const std::string& argv0,
                          const std::string& name) {
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0)
    throw_errno(errno, "socketpair");
  pid_t pid = 0;
  try {
    pid = spawn_program(executable, {argv0, child_flag, std::to_string(::getpid()), name},
                        environ, fds[1]);
  } catch (...) {
    ::close(fds[0]);
    ::close(fds[1]);
    throw;
  }
  ::close(fds[1]);
  return adopt_child(pid, fds[0]);
}

spawned_child adopt_child(pid_t pid, int link_fd) {
  int pidfd = pidfd_open(pid);
  if (pidfd < 0) {
    int err = errno;
    // ESRCH: someone else already reaped it (SIGCHLD ignored?), and the pid may be reused.
    // Otherwise it is our unreaped child: its pid cannot be recycled before we reap it.
    if (err != ESRCH) {
      ::kill(pid, SIGKILL);
      while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
      }
    }
    ::close(link_fd);
    throw_errno(err, "pidfd_open");
  }
  return {pid, pidfd, link_fd};
}

std::optional<int> reap(pid_t pid) {
  int status = 0;
  pid_t r;
  do {
    r = ::waitpid(pid, &status, WNOHANG);
  } while (r < 0 && errno == EINTR);
  if (r < 0 && errno == ECHILD) {
    log::warn("the exit status of process ", pid, " was taken by another waiter (is SIGCHLD ",
              "ignored, or does something call waitpid(-1)?); reporting exit code 255");
    return unknown_exit_status;
  }
  if (r != pid)
    return std::nullopt;
  if (WIFEXITED(status))
    return WEXITSTATUS(status);
  if (WIFSIGNALED(status))
    return -WTERMSIG(status);
  return std::nullopt;
}

std::string self_executable() {
  char path[PATH_MAX];
  auto n = ::readlink("/proc/self/exe", path, sizeof path - 1);
  if (n <= 0)
    return "/proc/self/exe";
  return std::string{path, static_cast<std::size_t>(n)};
}

void die_with_parent(pid_t expected_parent) {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != expected_parent)
    ::_exit(1);  // the parent died before the prctl took effect
}

} // namespace mproc::detail
