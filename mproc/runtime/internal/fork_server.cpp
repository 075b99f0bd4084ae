#include "mproc/runtime/internal/fork_server.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdint>
#include <cstring>
#include <system_error>
#include <vector>

#include "mproc/runtime/internal/fd_passing.hpp"
#include "mproc/runtime/internal/fork_server_protocol.hpp"

namespace mproc::detail {

namespace fork_protocol {

bool wait_writable(int fd) {
  pollfd p{fd, POLLOUT, 0};
  int ready;
  do {
    ready = ::poll(&p, 1, 1000);
  } while (ready < 0 && errno == EINTR);
  if (ready == 0)
    errno = EAGAIN;
  return ready == 1;
}

bool write_all(int fd, const void* data, std::size_t size) {
  auto* p = static_cast<const char*>(data);
  while (size > 0) {
    auto n = ::send(fd, p, size, MSG_NOSIGNAL);
    if (n < 0 && (errno == EINTR || (errno == EAGAIN && wait_writable(fd))))
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

} // namespace fork_protocol

namespace {

namespace proto = fork_protocol;

[[noreturn]] void throw_errno(int err, const std::string& what) {
  throw std::system_error(err, std::generic_category(), what);
}

std::string current_directory() {
  std::vector<char> path(PATH_MAX);
  if (::getcwd(path.data(), path.size()) == nullptr)
    return "/";
  return path.data();
}

// What an exec'd child would have as this descriptor: open and not close-on-exec. (A
// program started with stdin closed can have the node's own epoll or a pidfd on fd 0.)
bool kept_by_exec(int fd) {
  int flags = ::fcntl(fd, F_GETFD);
  return flags >= 0 && (flags & FD_CLOEXEC) == 0;
}

// The request's fields (fork_server_protocol.hpp) and the descriptors that go with it.
std::string encode_request(const std::string& name, std::size_t slot, int births,
                           std::vector<int>& fds) {
  std::string stdio;
  for (int fd = 0; fd <= 2; ++fd)
    if (kept_by_exec(fd)) {
      stdio += static_cast<char>('0' + fd);
      fds.push_back(fd);
    }
  fds.push_back(births);
  std::string blob = name + '\0' + stdio + '\0' + current_directory() + '\0'
                     + std::to_string(slot) + '\0';
  for (char** e = environ; *e != nullptr; ++e) {
    blob += *e;
    blob += '\0';
  }
  return blob;
}

// Whole, or not at all as far as the caller is concerned: a full socket means a server that
// does not read.
bool send_request(int control, const std::string& blob, const std::vector<int>& fds) {
  auto size = static_cast<std::uint32_t>(blob.size());
  alignas(cmsghdr) char space[CMSG_SPACE(sizeof(int) * proto::max_fds)] = {};
  iovec iov{&size, sizeof size};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  attach_fds(msg, space, fds);
  ssize_t n;
  do {
    n = ::sendmsg(control, &msg, MSG_NOSIGNAL);
  } while (n < 0 && (errno == EINTR || (errno == EAGAIN && proto::wait_writable(control))));
  return n == sizeof size && proto::write_all(control, blob.data(), blob.size());
}

} // namespace

fork_server::birth_register::birth_register() {
  constexpr auto size = proto::register_slots * sizeof(pid_t);
  fd = ::memfd_create("mproc-births", MFD_CLOEXEC);
  void* p = MAP_FAILED;
  if (fd >= 0 && ::ftruncate(fd, size) == 0)
    p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) {
    int err = errno;
    if (fd >= 0)
      ::close(fd);
    throw_errno(err, "cannot make the fork server's birth register");
  }
  slots = static_cast<pid_t*>(p);
}

fork_server::birth_register::~birth_register() {
  ::munmap(slots, proto::register_slots * sizeof(pid_t));
  ::close(fd);
}

std::unique_ptr<fork_server> fork_server::start(const std::string& executable,
                                                const std::string& argv0) {
  auto births = std::make_unique<birth_register>();
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0)
    throw_errno(errno, "socketpair");
  auto node = std::to_string(::getpid());
  // The role also travels in the environment: a program may construct its node with an argv
  // of its own, and must then still become the server, not another root.
  std::string role = std::string{proto::env_var} + "=" + node;
  std::vector<char*> env;
  for (char** e = environ; *e != nullptr; ++e)
    if (std::strncmp(*e, "LD_BIND_NOW=", 12) != 0)
      env.push_back(*e);
  env.push_back(const_cast<char*>("LD_BIND_NOW=1"));
  env.push_back(role.data());
  env.push_back(nullptr);
  pid_t pid = 0;
  try {
    pid = spawn_program(executable, {argv0, proto::flag, node}, env.data(), fds[1],
                        spawn_io::server);
  } catch (...) {
    ::close(fds[0]);
    ::close(fds[1]);
    throw;
  }
  ::close(fds[1]);
  ::fcntl(fds[0], F_SETFL, O_NONBLOCK);
  // Our unreaped child, so its pid is ours until we reap it; the pidfd signals it all the
  // same should something else reap it first (SIGCHLD ignored).
  int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  return std::unique_ptr<fork_server>{new fork_server{pid, pidfd, fds[0], std::move(births)}};
}

fork_server::~fork_server() {
  bury();
  if (pidfd_ >= 0)
    ::close(pidfd_);
}

fork_server::sent fork_server::request(const std::string& name) {
  if (ended())
    throw_errno(ESRCH, "the fork server (pid " + std::to_string(pid_) + ") is gone");
  int link[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, link) != 0)
    throw_errno(errno, "socketpair");
  auto slot = next_slot_++ % proto::register_slots;
  __atomic_store_n(&births_->slots[slot], 0, __ATOMIC_RELAXED);  // what an earlier one left
  std::vector<int> fds{link[1]};
  auto blob = encode_request(name, slot, births_->fd, fds);
  bool sent = send_request(control_, blob, fds);
  int err = errno;
  ::close(link[1]);
  if (!sent) {
    ::close(link[0]);
    ended_ = true;
    hung_ = err == EAGAIN;  // it stopped reading for a second
    throw_errno(err, "the fork server (pid " + std::to_string(pid_) + ") took no request");
  }
  return {link[0], slot};
}

std::optional<pid_t> fork_server::forked(std::size_t slot) const {
  auto pid = __atomic_load_n(&births_->slots[slot], __ATOMIC_RELAXED);
  return pid > 0 ? std::optional<pid_t>{pid} : std::nullopt;
}

std::optional<int> fork_server::answer() {
  if (dead_)  // an ended one may still have answers in the socket: children that exist
    return std::nullopt;
  std::int32_t value = 0;
  ssize_t n;
  do {
    n = ::recv(control_, &value, sizeof value, MSG_PEEK | MSG_DONTWAIT);
  } while (n < 0 && errno == EINTR);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
    return std::nullopt;
  if (n > 0 && n < static_cast<ssize_t>(sizeof value))
    return std::nullopt;  // the rest follows; the loop sees the socket readable again
  if (n <= 0) {
    ended_ = true;  // it closed its end: it is ending
    return std::nullopt;
  }
  ::recv(control_, &value, sizeof value, MSG_DONTWAIT);
  if (value == 0 && !ready_) {  // its first word: it serves from now on
    ready_ = true;
    return answer();
  }
  served_ = served_ || value > 0;
  return value;
}

bool fork_server::refused() const {
  return dead_ && !hung_ && WIFEXITED(status_) && WEXITSTATUS(status_) == refused_exit_code;
}

bool fork_server::killed() const {
  return dead_ && !hung_ && WIFSIGNALED(status_) && WTERMSIG(status_) == SIGKILL;
}

std::string fork_server::epitaph() const {
  if (hung_)
    return "it stopped answering and was killed";
  if (refused())
    return "it refused to serve: the program runs threads before it creates its node";
  if (WIFSIGNALED(status_))
    return std::string{"killed by SIG"} + sigabbrev_np(WTERMSIG(status_));
  return "it exited with code " + std::to_string(WEXITSTATUS(status_));
}

void fork_server::bury() {
  if (dead_)
    return;
  dead_ = true;
  ::close(control_);
  // One that closed its socket is ending and is waited for (a second at most); one that is
  // still there is killed.
  pollfd p{pidfd_, POLLIN, 0};
  if (pidfd_ >= 0 && ended_ && !hung_)
    ::poll(&p, 1, 1000);
  if (::waitpid(pid_, &status_, WNOHANG) == pid_)
    return;
  if (pidfd_ >= 0)
    ::syscall(SYS_pidfd_send_signal, pidfd_, SIGKILL, nullptr, 0);
  else
    ::kill(pid_, SIGKILL);  // unreaped, so still ours
  while (::waitpid(pid_, &status_, 0) < 0 && errno == EINTR) {
  }
}

} // namespace mproc::detail
