// The fork server process: serves the node's requests by forking children
// (runtime/internal/fork_server.hpp says why and how).
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <linux/sched.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "mproc/runtime/internal/fd_passing.hpp"
#include "mproc/runtime/internal/fork_server.hpp"
#include "mproc/runtime/internal/fork_server_protocol.hpp"
#include "mproc/runtime/process_key.hpp"

namespace mproc::detail {

namespace {

namespace proto = fork_protocol;

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

struct request {
  std::vector<int> fds;  // the link, then the standard descriptors named in the request
  int births = -1;       // the birth register
  std::size_t slot = 0;  // this request's slot in it
  std::string blob;
  std::vector<char*> fields;  // into blob

  ~request() {
    for (int fd : fds)
      ::close(fd);
    if (births >= 0)
      ::close(births);
  }
};

bool receive(int control, request& r) {
  std::uint32_t size = 0;
  alignas(cmsghdr) char space[CMSG_SPACE(sizeof(int) * proto::max_fds)] = {};
  iovec iov{&size, sizeof size};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = space;
  msg.msg_controllen = sizeof space;
  ssize_t n;
  do {
    n = ::recvmsg(control, &msg, MSG_CMSG_CLOEXEC);
  } while (n < 0 && errno == EINTR);
  if (n <= 0)
    return false;  // the node closed the socket (it ended)
  r.fds = received_fds(msg);
  // The node writes the length in one piece; anything else is the node gone or broken.
  if (n != sizeof size || (msg.msg_flags & MSG_CTRUNC) != 0 || r.fds.empty()
      || size > proto::max_request)
    return false;
  r.blob.resize(size);
  if (!proto::read_all(control, r.blob.data(), size) || r.blob.empty() || r.blob.back() != '\0')
    return false;
  for (std::size_t at = 0; at < r.blob.size(); at += std::strlen(&r.blob[at]) + 1)
    r.fields.push_back(&r.blob[at]);
  if (r.fields.size() < proto::env_fields
      || r.fds.size() != 2 + std::strlen(r.fields[proto::stdio_field]))
    return false;
  r.births = r.fds.back();
  r.fds.pop_back();
  char* end = nullptr;
  r.slot = std::strtoul(r.fields[proto::slot_field], &end, 10);
  return end != r.fields[proto::slot_field] && *end == '\0' && r.slot < proto::register_slots;
}

// The node's birth register (fork_server_protocol.hpp), mapped at the first request; null
// if it cannot be, and then the server forks nothing.
pid_t* map_births(int fd) {
  static pid_t* births = [fd] {
    void* p = ::mmap(nullptr, proto::register_slots * sizeof(pid_t), PROT_READ | PROT_WRITE,
                     MAP_SHARED, fd, 0);
    return p == MAP_FAILED ? nullptr : static_cast<pid_t*>(p);
  }();
  return births;
}

// The link on child_link_fd and the node's standard descriptors of the moment on 0, 1, 2
// (closed where the node has none), as an exec'd child would have them.
void place_descriptors(request& r) {
  // First above every target, so that no dup2 below overwrites a descriptor still needed.
  std::vector<int> high;
  for (int fd : r.fds)
    high.push_back(::fcntl(fd, F_DUPFD_CLOEXEC, child_link_fd + 1));
  ::dup2(high[0], child_link_fd);
  const char* named = r.fields[proto::stdio_field];
  for (int std_fd = 0; std_fd <= 2; ++std_fd) {
    const char* at = std::strchr(named, '0' + std_fd);
    if (at == nullptr)
      ::close(std_fd);
    else
      ::dup2(high[1 + static_cast<std::size_t>(at - named)], std_fd);
  }
  for (int fd : high)
    ::close(fd);
  for (int fd : r.fds)
    if (fd > child_link_fd)  // lower ones were just replaced
      ::close(fd);
  r.fds.clear();
}

// The signal dispositions the server changed for itself, as the program had them.
struct sigaction program_sigint, program_sigpipe;

// What an exec'd child has when its node starts: the signal state the program set up before
// creating its node (the server ran the same main() as far), the node's descriptors,
// environment and working directory of the moment.
[[noreturn]] void become_child(request& r, pid_t node, const fork_server::child_main& run) noexcept {
  ::sigaction(SIGINT, &program_sigint, nullptr);
  ::sigaction(SIGPIPE, &program_sigpipe, nullptr);
  mproc::detail::forget_process_key();  // a raw clone runs no atfork handler
  place_descriptors(r);
  ::clearenv();
  for (std::size_t i = proto::env_fields; i < r.fields.size(); ++i)
    ::putenv(r.fields[i]);  // r lives until _exit
  const char* name = r.fields[proto::name_field];
  if (::chdir(r.fields[proto::cwd_field]) != 0)
    std::fprintf(stderr, "mproc: child %s: cannot enter %s: %s\n", name,
                 r.fields[proto::cwd_field], std::strerror(errno));
  run(child_args{node, name});  // reports its own failure to start, and never returns
  ::_exit(1);
}

// CLONE_PARENT: the node, not the server, is the parent. CLONE_CHILD_SETTID: the kernel
// writes the child's id into its thread descriptor, as fork() does. CLONE_PARENT_SETTID: it
// writes it into the birth register too, before the fork returns. The exit signal stays 0:
// with CLONE_PARENT the child inherits the server's, SIGCHLD.
constexpr unsigned long sibling_flags = CLONE_PARENT | CLONE_CHILD_SETTID | CLONE_PARENT_SETTID;

pid_t clone_as_sibling(pid_t* tid_slot, pid_t* birth_slot) {
  static bool have_clone3 = true;  // container seccomp profiles often refuse it (ENOSYS)
  if (have_clone3) {
    clone_args args{};
    args.flags = sibling_flags;
    args.child_tid = reinterpret_cast<std::uintptr_t>(tid_slot);
    args.parent_tid = reinterpret_cast<std::uintptr_t>(birth_slot);
    auto pid = static_cast<pid_t>(::syscall(SYS_clone3, &args, sizeof args));
    if (pid >= 0 || (errno != ENOSYS && errno != EPERM))
      return pid;
    have_clone3 = false;
  }
  // clone(2): the order of its last arguments differs between architectures.
#if defined(__x86_64__)
  return static_cast<pid_t>(
    ::syscall(SYS_clone, sibling_flags, nullptr, birth_slot, tid_slot, 0));
#else
  return static_cast<pid_t>(
    ::syscall(SYS_clone, sibling_flags, nullptr, birth_slot, 0, tid_slot));
#endif
}

bool fault_is(const char* name) {
  const char* fault = std::getenv(proto::fault_env_var);
  return fault != nullptr && std::strcmp(fault, name) == 0;
}

// "die-before-ready:N:PATH": whether this is one of the first N servers, counted as bytes
// appended to the file PATH.
bool among_first_servers() {
  const char* fault = std::getenv(proto::fault_env_var);
  constexpr std::string_view prefix = "die-before-ready:";
  if (fault == nullptr || std::strncmp(fault, prefix.data(), prefix.size()) != 0)
    return false;
  char* path = nullptr;
  auto n = std::strtol(fault + prefix.size(), &path, 10);
  if (*path != ':')
    return false;
  int fd = ::open(path + 1, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
  // The offset just after this server's own byte: its place in the count.
  bool first = fd >= 0 && ::write(fd, "x", 1) == 1 && ::lseek(fd, 0, SEEK_CUR) <= n;
  if (fd >= 0)
    ::close(fd);
  return first;
}

[[noreturn]] void serve_requests(pid_t node, pid_t* tid_slot,
                                 const fork_server::child_main& run) noexcept {
  const int control = child_link_fd;
  const bool die_before_fork = fault_is("die-before-fork");
  const bool exit_before_fork = fault_is("exit-before-fork");
  const bool die_after_fork = fault_is("die-after-fork");
  const bool kill_child_and_die = fault_is("kill-child-and-die-after-fork");
  // The kernel forgets a robust-futex list on clone; the child registers the server's
  // (its copy of it is at the same address).
  void* robust = nullptr;
  std::size_t robust_size = 0;
  ::syscall(SYS_get_robust_list, 0, &robust, &robust_size);
  if (among_first_servers())
    ::raise(SIGKILL);
  try {
    std::int32_t ready = 0;
    if (!proto::write_all(control, &ready, sizeof ready))
      ::_exit(0);
    for (;;) {
      request r;
      if (!receive(control, r))
        break;  // the node closed the control socket (it ended) or broke the protocol
      if (die_before_fork)
        ::raise(SIGKILL);
      if (exit_before_fork)
        ::_exit(fork_server::refused_exit_code + 1);  // an end, not a refusal
      pid_t* births = map_births(r.births);
      if (births == nullptr) {  // a fork the node could not learn of: it execs instead
        std::int32_t answer = -ENOMEM;
        if (!proto::write_all(control, &answer, sizeof answer))
          break;
        continue;
      }
      // Written here first: the kernel's own write of the pid, which it does not check,
      // then finds the page mapped in.
      births[r.slot] = 0;
      pid_t pid = clone_as_sibling(tid_slot, births + r.slot);
      if (pid == 0) {
        ::syscall(SYS_set_robust_list, robust, robust_size);
        ::close(control);
        ::munmap(births, proto::register_slots * sizeof(pid_t));
        ::close(std::exchange(r.births, -1));
        become_child(r, node, run);
      }
      if (pid > 0 && kill_child_and_die)
        ::kill(pid, SIGKILL);
      if (pid > 0 && (die_after_fork || kill_child_and_die))
        ::raise(SIGKILL);
      std::int32_t answer = pid > 0 ? pid : -errno;
      if (!proto::write_all(control, &answer, sizeof answer))
        break;
    }
  } catch (...) {  // out of memory: the node starts another, or by exec (node_forks.cpp)
  }
  ::_exit(0);
}

// A server's role, taken from its environment during static initialisation: from then on
// it dies with its node (its main() may take a while to reach the node, and the node may be
// gone meanwhile), and no program its main() runs inherits the role.
const pid_t server_of = [] {
  const char* node = std::getenv(proto::env_var);
  if (node == nullptr)
    return pid_t{0};
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  auto pid = static_cast<pid_t>(std::strtol(node, nullptr, 10));
  ::unsetenv(proto::env_var);
  return pid;
}();

} // namespace

std::optional<pid_t> fork_server::parse_args(int argc, char** argv) {
  if (server_of != 0)
    return server_of;
  if (argc < 3 || std::strcmp(argv[1], proto::flag) != 0)
    return std::nullopt;
  return static_cast<pid_t>(std::strtol(argv[2], nullptr, 10));
}

void fork_server::serve(pid_t node, const child_main& run) {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != node)
    ::_exit(0);  // the node died before the prctl
  auto* tid_slot = thread_id_slot();
  if (tid_slot == nullptr || !single_threaded())
    ::_exit(refused_exit_code);
  // Ctrl-C in a terminal is for the program; the server ends with the node.
  struct sigaction ignore{};
  ignore.sa_handler = SIG_IGN;
  ::sigaction(SIGINT, &ignore, &program_sigint);
  ::sigaction(SIGPIPE, &ignore, &program_sigpipe);
  ::unsetenv("LD_BIND_NOW");  // its work is done; children get the node's environment
  // Exec'd from /proc/self/exe, its kernel name is "exe": ps, top and pgrep show the
  // program's (argv[0]'s) instead. Its children rename themselves after their process.
  ::prctl(PR_SET_NAME, program_invocation_short_name);
  serve_requests(node, tid_slot, run);
}

} // namespace mproc::detail
