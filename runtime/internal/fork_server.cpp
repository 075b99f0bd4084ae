#include "runtime/internal/fork_server.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <system_error>
#include <vector>

namespace mproc::detail {

namespace {

// A request: a u32 length, then the child's name, working directory and environment, each
// NUL-terminated; the child's end of its link travels with the length (SCM_RIGHTS).
// The answer: an i32, the child's pid or -errno.
constexpr std::uint32_t max_request = 16u << 20;

[[noreturn]] void throw_errno(int err, const std::string& what) {
  throw std::system_error(err, std::generic_category(), what);
}

bool single_threaded() {
  std::ifstream status{"/proc/self/status"};
  std::string line;
  while (std::getline(status, line))
    if (line.rfind("Threads:", 0) == 0)
      return std::atoi(line.c_str() + 8) == 1;
  return false;
}

// The C library keeps the calling thread's id in its thread descriptor; glibc's fork()
// updates the child's copy, a raw clone does not, and a stale id would make the child's
// robust and priority-inheritance mutexes name the server as their owner. The slot is found
// as the one word of the descriptor holding this thread's id; nullptr when that is not
// exactly one word.
pid_t* thread_id_slot() {
  auto* self = reinterpret_cast<pid_t*>(::pthread_self());
  auto tid = static_cast<pid_t>(::syscall(SYS_gettid));
  pid_t* found = nullptr;
  for (std::size_t i = 0; i < 1024 / sizeof(pid_t); ++i) {
    if (self[i] != tid)
      continue;
    if (found != nullptr)
      return nullptr;
    found = self + i;
  }
  return found;
}

bool write_all(int fd, const void* data, std::size_t size) {
  auto* p = static_cast<const char*>(data);
  while (size > 0) {
    auto n = ::send(fd, p, size, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return false;
    p += n;
    size -= static_cast<std::size_t>(n);
  }
  return true;
}

bool read_all(int fd, void* data, std::size_t size) {
  auto* p = static_cast<char*>(data);
  while (size > 0) {
    auto n = ::read(fd, p, size);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return false;
    p += n;
    size -= static_cast<std::size_t>(n);
  }
  return true;
}

// ---- the server's side -----------------------------------------------------------------

struct request {
  int link_fd = -1;
  std::string blob;
  std::vector<char*> fields;  // into blob: name, cwd, then the environment
};

bool receive(int control, request& r) {
  std::uint32_t size = 0;
  alignas(cmsghdr) char space[CMSG_SPACE(sizeof(int))];
  iovec iov{&size, sizeof size};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = space;
  msg.msg_controllen = sizeof space;
  ssize_t n;
  do {
    n = ::recvmsg(control, &msg, 0);
  } while (n < 0 && errno == EINTR);
  auto* c = CMSG_FIRSTHDR(&msg);
  if (c != nullptr && c->cmsg_type == SCM_RIGHTS)
    std::memcpy(&r.link_fd, CMSG_DATA(c), sizeof(int));
  // The node writes the length in one piece; anything else is the node gone or broken.
  if (n != sizeof size || r.link_fd < 0 || size > max_request)
    return false;
  r.blob.resize(size);
  if (!read_all(control, r.blob.data(), size) || r.blob.empty() || r.blob.back() != '\0')
    return false;
  for (std::size_t at = 0; at < r.blob.size(); at += std::strlen(&r.blob[at]) + 1)
    r.fields.push_back(&r.blob[at]);
  return r.fields.size() >= 2;
}

// What exec would give the child: default signal dispositions and an empty mask, the link
// on child_link_fd, the node's environment and working directory of the moment.
[[noreturn]] void become_child(request& r, pid_t node, const fork_server::child_main& run) {
  struct sigaction dfl{};
  dfl.sa_handler = SIG_DFL;
  for (int sig = 1; sig < NSIG; ++sig)
    ::sigaction(sig, &dfl, nullptr);  // refused for KILL, STOP and the C library's own
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  if (r.link_fd != child_link_fd) {
    ::dup2(r.link_fd, child_link_fd);
    ::close(r.link_fd);
  }
  ::clearenv();
  for (std::size_t i = 2; i < r.fields.size(); ++i)
    ::putenv(r.fields[i]);  // r lives until _exit
  if (::chdir(r.fields[1]) != 0)
    std::fprintf(stderr, "mproc: child %s: cannot enter %s: %s\n", r.fields[0], r.fields[1],
                 std::strerror(errno));
  try {
    run(child_args{node, r.fields[0]});
  } catch (const std::exception& e) {
    std::fprintf(stderr, "mproc: child %s failed to start: %s\n", r.fields[0], e.what());
  }
  ::_exit(1);
}

// Exec closes descriptors marked close-on-exec; the server, a fork, closes them itself so
// its children hold only what an exec'd child would.
void close_cloexec_descriptors(int keep) {
  std::vector<int> doomed;
  if (auto* dir = ::opendir("/proc/self/fd")) {
    while (auto* e = ::readdir(dir)) {
      int fd = std::atoi(e->d_name);
      if (e->d_name[0] != '.' && fd != keep && fd != ::dirfd(dir)
          && (::fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0)
        doomed.push_back(fd);
    }
    ::closedir(dir);
  }
  for (int fd : doomed)
    ::close(fd);
}

pid_t clone_as_sibling(pid_t* tid_slot) {
  clone_args args{};
  // CLONE_PARENT: the node, not the server, is the parent. CLONE_CHILD_SETTID: the kernel
  // writes the child's id into its thread descriptor, as fork() does.
  args.flags = CLONE_PARENT | CLONE_CHILD_SETTID;
  args.child_tid = reinterpret_cast<std::uintptr_t>(tid_slot);
  // exit_signal stays 0: with CLONE_PARENT the child inherits the server's, SIGCHLD.
  return static_cast<pid_t>(::syscall(SYS_clone3, &args, sizeof args));
}

[[noreturn]] void serve(int control, pid_t node, pid_t* tid_slot,
                        const fork_server::child_main& run) {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != node)
    ::_exit(0);
  // Ctrl-C in a terminal is for the program; the server ends with the node.
  ::signal(SIGINT, SIG_IGN);
  ::signal(SIGPIPE, SIG_IGN);
  close_cloexec_descriptors(control);
  // The kernel forgets a robust-futex list on clone; the child registers the server's
  // (its copy of it is at the same address).
  void* robust = nullptr;
  std::size_t robust_size = 0;
  ::syscall(SYS_get_robust_list, 0, &robust, &robust_size);
  for (;;) {
    request r;
    if (!receive(control, r))
      ::_exit(0);  // the node closed the control socket (ended) or broke the protocol
    pid_t pid = clone_as_sibling(tid_slot);
    if (pid == 0) {
      ::syscall(SYS_set_robust_list, robust, robust_size);
      ::close(control);
      become_child(r, node, run);
    }
    std::int32_t answer = pid > 0 ? pid : -errno;
    ::close(r.link_fd);
    if (!write_all(control, &answer, sizeof answer))
      ::_exit(0);
  }
}

// ---- the node's side -------------------------------------------------------------------

std::string current_directory() {
  std::vector<char> path(PATH_MAX);
  if (::getcwd(path.data(), path.size()) == nullptr)
    return "/";
  return path.data();
}

std::string encode_request(const std::string& name) {
  std::string blob = name;
  blob += '\0';
  blob += current_directory();
  blob += '\0';
  for (char** e = environ; *e != nullptr; ++e) {
    blob += *e;
    blob += '\0';
  }
  return blob;
}

bool send_with_fd(int control, const std::string& blob, int fd) {
  auto size = static_cast<std::uint32_t>(blob.size());
  alignas(cmsghdr) char space[CMSG_SPACE(sizeof(int))] = {};
  iovec iov{&size, sizeof size};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = space;
  msg.msg_controllen = sizeof space;
  auto* c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int));
  std::memcpy(CMSG_DATA(c), &fd, sizeof fd);
  ssize_t n;
  do {
    n = ::sendmsg(control, &msg, MSG_NOSIGNAL);
  } while (n < 0 && errno == EINTR);
  return n == sizeof size && write_all(control, blob.data(), blob.size());
}

} // namespace

std::unique_ptr<fork_server> fork_server::start(child_main run) {
  auto* tid_slot = thread_id_slot();
  if (tid_slot == nullptr || !single_threaded())
    return nullptr;
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0)
    return nullptr;
  std::fflush(nullptr);  // or every child would write what stdio holds for the node
  auto node = ::getpid();
  auto pid = ::fork();
  if (pid == 0) {
    ::close(fds[0]);
    serve(fds[1], node, tid_slot, run);
  }
  ::close(fds[1]);
  if (pid < 0) {
    ::close(fds[0]);
    return nullptr;
  }
  return std::unique_ptr<fork_server>{new fork_server{pid, fds[0]}};
}

fork_server::~fork_server() {
  std::lock_guard guard{mtx_};
  if (!dead_)
    bury();
}

bool fork_server::alive() const {
  std::lock_guard guard{mtx_};
  return !dead_;
}

void fork_server::bury() {
  ::close(control_);
  ::kill(pid_, SIGKILL);  // our unreaped child: the pid cannot have been recycled
  while (::waitpid(pid_, nullptr, 0) < 0 && errno == EINTR) {
  }
  dead_ = true;
}

spawned_child fork_server::spawn(const std::string& name, std::chrono::milliseconds timeout) {
  std::lock_guard guard{mtx_};
  if (dead_)
    throw_errno(ESRCH, "the fork server is gone");
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0)
    throw_errno(errno, "socketpair");
  bool sent = send_with_fd(control_, encode_request(name), fds[1]);
  ::close(fds[1]);
  std::int32_t answer = 0;
  // The server answers within a fork's time; a stopped or hung one is given up on, so that
  // no start waits on it, and later starts exec.
  pollfd p{control_, POLLIN, 0};
  int ready;
  do {
    ready = sent ? ::poll(&p, 1, static_cast<int>(timeout.count())) : 0;
  } while (ready < 0 && errno == EINTR);
  bool answered = ready == 1 && read_all(control_, &answer, sizeof answer);
  if (!answered) {
    ::close(fds[0]);
    bury();
    throw_errno(ready == 0 && sent ? ETIMEDOUT : EPIPE,
                "the fork server (pid " + std::to_string(pid_) + ") did not answer");
  }
  if (answer <= 0) {
    ::close(fds[0]);
    throw_errno(-answer, "fork");
  }
  return adopt_child(static_cast<pid_t>(answer), fds[0]);
}

} // namespace mproc::detail
