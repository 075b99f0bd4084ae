#include "mproc/runtime/internal/commands.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <linux/close_range.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstddef>
#include <cstring>
#include <future>
#include <mutex>
#include <vector>

#include "mproc/runtime/errors.hpp"
#include "mproc/runtime/log.hpp"

extern char** environ;

namespace mproc::detail {

namespace {

rlimit original_limit{RLIM_INFINITY, RLIM_INFINITY};

[[noreturn]] void fail(errc code, const std::string& what) {
  throw mproc::error{make_error(code, what), what};
}

[[noreturn]] void fail_errno(int err, const std::string& what) {
  fail(errc::spawn_failed, what + ": " + std::strerror(err));
}

std::string path_variable(const command_spec& spec) {
  if (spec.env) {
    for (const auto& kv : *spec.env)
      if (kv.rfind("PATH=", 0) == 0)
        return kv.substr(5);
    return "/usr/local/bin:/usr/bin:/bin";
  }
  const char* p = std::getenv("PATH");
  return p != nullptr ? p : "/usr/local/bin:/usr/bin:/bin";
}

// The program execve gets: a name without '/' searched in PATH as execvp would, here, so that
// a missing or non-executable program is an error naming it in the caller.
std::string resolve(const command_spec& spec) {
  if (spec.argv.empty() || spec.argv[0].empty())
    fail(errc::bad_arguments, "a command needs a program: argv is empty");
  const auto& name = spec.argv[0];
  if (name.find('/') != std::string::npos)
    return name;  // relative to cwd, as exec sees it after the chdir
  auto dirs = path_variable(spec);
  std::string denied;
  for (std::size_t from = 0; from <= dirs.size();) {
    auto to = dirs.find(':', from);
    if (to == std::string::npos)
      to = dirs.size();
    auto dir = dirs.substr(from, to - from);
    auto candidate = (dir.empty() ? std::string{"."} : dir) + "/" + name;
    // A relative entry ("", ".", "bin") names a directory under the one exec runs in,
    // after the chdir to cwd: looked at there, and handed to exec relative as it is.
    auto here = candidate[0] != '/' && spec.cwd ? *spec.cwd + "/" + candidate : candidate;
    struct stat st{};
    if (::stat(here.c_str(), &st) == 0 && S_ISREG(st.st_mode)) {
      if (::access(here.c_str(), X_OK) == 0)
        return candidate;
      if (denied.empty())
        denied = candidate;
    }
    from = to + 1;
  }
  if (!denied.empty())
    fail_errno(EACCES, "cannot execute '" + denied + "'");
  fail_errno(ENOENT, "cannot find '" + name + "' in PATH (" + dirs + ")");
}

std::vector<char*> c_strings(const std::vector<std::string>& v) {
  std::vector<char*> out;
  out.reserve(v.size() + 1);
  for (const auto& s : v)
    out.push_back(const_cast<char*>(s.c_str()));
  out.push_back(nullptr);
  return out;
}

std::vector<std::string> this_environment() {
  std::vector<std::string> out;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e)
    if (std::strncmp(*e, "MPROC_NOFILE=", 13) != 0)
      out.emplace_back(*e);
  return out;
}

// Everything the forked child needs, made before the fork: between fork and exec the child
// of a threaded process may call only async-signal-safe functions (no allocation).
struct child_plan {
  const char* path;
  char* const* argv;
  char* const* envp;
  const char* cwd;
  int fds[3];
  bool new_session;
  pid_t parent;
  int error_pipe;
};

enum stage : int { stage_cwd = 1, stage_exec = 2, stage_fds = 3 };

[[noreturn]] void report(int pipe, int which, int err) {
  int msg[2] = {which, err};
  [[maybe_unused]] auto n = ::write(pipe, msg, sizeof msg);
  ::_exit(127);
}

// The program's 0-2 as the plan says; false (errno set) when a descriptor is bad.
bool set_up_stdio(const child_plan& p) {
  int fds[3] = {p.fds[0], p.fds[1], p.fds[2]};
  for (int i = 0; i < 3; ++i)  // a source among 0-2 would be overwritten by another's dup2
    if (fds[i] >= 0 && fds[i] < 3 && fds[i] != i
        && (fds[i] = ::fcntl(fds[i], F_DUPFD_CLOEXEC, 3)) < 0)
      return false;
  for (int i = 0; i < 3; ++i) {
    if (fds[i] == i ? ::fcntl(i, F_SETFD, 0) < 0 : fds[i] >= 0 && ::dup2(fds[i], i) < 0)
      return false;
  }
  // Nothing of this process crosses the exec but 0-2, whatever its code forgot to mark.
  return ::syscall(SYS_close_range, 3u, ~0u, CLOSE_RANGE_CLOEXEC) == 0 || mark_each_cloexec();
}

// The forked child (every signal blocked by the parent around the fork, so that none of
// this process's handlers runs here): default dispositions first, the empty mask last.
[[noreturn]] void become_program(const child_plan& p) {
  for (int sig = 1; sig < NSIG; ++sig) {  // an ignored signal would stay ignored across exec
    struct sigaction dfl{};
    dfl.sa_handler = SIG_DFL;
    ::sigaction(sig, &dfl, nullptr);
  }
  if (p.new_session) {
    ::setsid();
  } else {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != p.parent)  // the forking thread ended before the prctl
      ::_exit(127);
  }
  if (!set_up_stdio(p))
    report(p.error_pipe, stage_fds, errno);
  ::setrlimit(RLIMIT_NOFILE, &original_limit);
  sigset_t none;
  ::sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  if (p.cwd != nullptr && ::chdir(p.cwd) != 0)
    report(p.error_pipe, stage_cwd, errno);
  ::execve(p.path, p.argv, p.envp);
  report(p.error_pipe, stage_exec, errno);
}

// A descriptor of 3 or above, so that the child's dup2 onto 0-2 cannot close it.
int above_stdio(int fd) {
  if (fd >= 3 || fd < 0)
    return fd;
  int moved = ::fcntl(fd, F_DUPFD_CLOEXEC, 3);
  ::close(fd);
  return moved;
}

} // namespace

const rlimit& original_descriptor_limit() {
  return original_limit;
}

// The environment carries the limit the root started with to its children, which start
// with the raised one; commands do not see the variable (this_environment skips it).
constexpr const char* limit_variable = "MPROC_NOFILE";

void raise_descriptor_limit() {
  static bool done = false;  // init() runs again from the node's constructor
  rlimit lim{};
  if (done || ::getrlimit(RLIMIT_NOFILE, &lim) != 0)
    return;
  done = true;
  original_limit = lim;
  if (const char* v = std::getenv(limit_variable)) {
    char* end = nullptr;
    auto soft = std::strtoull(v, &end, 10);
    if (end != v && *end == '\0' && soft <= lim.rlim_max)
      original_limit.rlim_cur = static_cast<rlim_t>(soft);
  } else {
    ::setenv(limit_variable, std::to_string(lim.rlim_cur).c_str(), 0);
  }
  if (lim.rlim_cur < lim.rlim_max) {
    lim.rlim_cur = lim.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &lim);
  }
}

// Kills and reaps a child that was forked but cannot be handed out, closing `fds`.
struct abandon_on_failure {
  pid_t pid;
  std::vector<int> fds;
  bool armed = true;
  ~abandon_on_failure() {
    if (!armed)
      return;
    ::kill(pid, SIGKILL);
    while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
    }
    for (int fd : fds)
      if (fd >= 0)
        ::close(fd);
  }
};

command_table::launched command_table::launch(const command_spec& spec, const std::string& path) {
  if (finished_)
    fail(errc::node_shutdown, "the node is shutting down");
  auto args = c_strings(spec.argv);  // before any descriptor: these may throw
  auto env_strings = spec.env ? *spec.env : this_environment();
  auto env = c_strings(env_strings);
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0)
    fail_errno(errno, "cannot start '" + path + "'");
  int report_in = above_stdio(pipe_fds[0]);
  int report_out = above_stdio(pipe_fds[1]);
  if (report_in < 0 || report_out < 0) {
    int err = errno;
    ::close(report_in);
    ::close(report_out);
    fail_errno(err, "cannot start '" + path + "'");
  }
  child_plan plan{path.c_str(), args.data(), env.data(), spec.cwd ? spec.cwd->c_str() : nullptr,
                  {spec.stdin_fd, spec.stdout_fd, spec.stderr_fd}, spec.new_session,
                  ::getpid(), report_out};
  sigset_t all;
  sigset_t before;
  ::sigfillset(&all);
  ::pthread_sigmask(SIG_SETMASK, &all, &before);
  pid_t pid = ::fork();
  if (pid == 0)
    become_program(plan);
  int err = errno;
  ::pthread_sigmask(SIG_SETMASK, &before, nullptr);
  ::close(report_out);
  if (pid < 0) {
    ::close(report_in);
    fail_errno(err, "cannot start '" + path + "'");
  }
  abandon_on_failure guard{pid, {report_in}};
  auto s = std::make_shared<command_state>();
  s->pid = pid;
  s->new_session = spec.new_session;
  s->pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (s->pidfd < 0)
    fail_errno(errno, "cannot watch '" + path + "' (pidfd_open)");
  watch(s);
  guard.armed = false;
  return {s, report_in};
}

void command_table::watch(const std::shared_ptr<command_state>& s) {
  s->token = loop_.add(s->pidfd, EPOLLIN, [this, s](std::uint32_t) {
    bool reaped;
    {
      std::lock_guard guard{s->m};
      reaped = s->reap_locked(false);
    }
    if (reaped)
      forget(s);
  });
  live_.emplace(s->token, s);
}

void command_table::forget(const std::shared_ptr<command_state>& s) {
  loop_.remove(s->token, s->pidfd);  // a reaped program's pidfd stays readable
  live_.erase(s->token);
}

std::shared_ptr<command_state> command_table::start(const command_spec& spec) {
  auto path = resolve(spec);
  std::promise<launched> started;
  auto run = [&] {
    try {
      started.set_value(launch(spec, path));
    } catch (...) {
      started.set_exception(std::current_exception());
    }
  };
  if (loop_.in_loop()) {
    run();
  } else {
    // Under the lock that finish() takes first: a task posted after the loop stopped
    // would never run, and this call would wait for it forever.
    std::lock_guard guard{finish_mtx_};
    if (closing_)
      fail(errc::node_shutdown, "the node is shutting down");
    loop_.post(run);
    io_loop::will_block();
  }
  auto l = started.get_future().get();
  int msg[2] = {0, 0};
  ssize_t n;
  while ((n = ::read(l.error_pipe, msg, sizeof msg)) < 0 && errno == EINTR) {
  }
  ::close(l.error_pipe);
  if (n == static_cast<ssize_t>(sizeof msg)) {  // it exited 127; the loop reaps it
    if (msg[0] == stage_cwd)
      fail_errno(msg[1], "cannot change to directory '" + *spec.cwd + "' to run '" + path + "'");
    if (msg[0] == stage_fds)
      fail_errno(msg[1], "cannot give '" + path + "' its standard streams");
    fail_errno(msg[1], "cannot execute '" + path + "'");
  }
  return l.state;
}

void command_table::finish() {
  {
    std::lock_guard guard{finish_mtx_};
    if (closing_)
      return;
    closing_ = true;
  }
  std::promise<void> done;
  loop_.post([this, &done] {
    finished_ = true;
    std::vector<const command_state*> unkillable;
    for (auto& [token, s] : live_) {  // every SIGKILL first, then the reaping
      loop_.remove(token, s->pidfd);
      std::lock_guard guard{s->m};
      if (s->new_session || s->returncode)
        continue;
      // A program that changed its user (a set-uid one: sudo, su) refuses our signal
      // (EPERM): waiting for it would hold the node's end for as long as it runs.
      int sent = static_cast<int>(::syscall(SYS_pidfd_send_signal, s->pidfd, SIGKILL, nullptr, 0));
      int why = errno;
      if (sent != 0 && why != ESRCH) {
        log::warn("program ", s->pid, " cannot be killed (", std::strerror(why),
                  "; it may have changed its user): it is left running as this node ends");
        unkillable.push_back(s.get());
      }
    }
    for (auto& [token, s] : live_) {
      std::lock_guard guard{s->m};
      bool left_running =
        std::find(unkillable.begin(), unkillable.end(), s.get()) != unkillable.end();
      if (s->new_session || left_running) {
        s->detached = true;  // it outlives the node: its handle reaps it
        s->cv.notify_all();  // a waiter goes on by itself
      } else {
        s->reap_locked(true);
      }
    }
    live_.clear();
    done.set_value();
  });
  done.get_future().wait();
}

// Read with the raw system call into the stack: nothing here may allocate after fork.
bool mark_each_cloexec() {
  int dir = ::open("/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir < 0) {  // no /proc (a chroot, a sandbox): every number up to the limit, slowly
    rlimit limit{};
    if (::getrlimit(RLIMIT_NOFILE, &limit) != 0)
      return false;
    for (rlim_t fd = 3; fd < limit.rlim_cur; ++fd)
      ::fcntl(static_cast<int>(fd), F_SETFD, FD_CLOEXEC);
    return true;
  }
  alignas(dirent64) char buf[4096];
  long n;
  while ((n = ::syscall(SYS_getdents64, dir, buf, sizeof buf)) > 0) {
    for (long at = 0; at < n;) {
      // The kernel's linux_dirent64 layout, which glibc's dirent64 shares.
      unsigned short length;
      std::memcpy(&length, buf + at + offsetof(dirent64, d_reclen), sizeof length);
      const char* name = buf + at + offsetof(dirent64, d_name);
      at += length;
      int fd = 0;
      const char* c = name;
      for (; *c >= '0' && *c <= '9'; ++c)
        fd = fd * 10 + (*c - '0');
      if (*c == '\0' && c != name && fd > 2 && fd != dir)
        ::fcntl(fd, F_SETFD, FD_CLOEXEC);
    }
  }
  ::close(dir);
  return n == 0;
}

} // namespace mproc::detail
