// The raw ping-pong with a node's thread structure, nothing of mproc: how much of a round
// trip the threads and their wake-ups cost, apart from mproc's own code (docs/architecture.md,
// "Known limits"). Fork + socketpair, 16-byte messages echoed; the workloads:
//   pingpong_blocking      both sides block in recv, as raw's pingpong (the reference here)
//   pingpong_child_epoll   the child waits in epoll_wait, then reads (a node's loop thread);
//                          the parent blocks in recv, as raw's pingpong does on both sides
//   pingpong_via_loop      the same child; in the parent a loop thread waits in epoll_wait,
//                          reads the reply and hands it to the caller, which spins up to
//                          100 us (with more than one CPU), then sleeps on a futex word: what
//                          node::request does (runtime/internal/requester.cpp)
//   pingpong_caller_polls  the same child; the caller reads its own reply, waiting in poll()
//                          without a spin (a caller that must also hear of replies arriving
//                          another way)
// Prints "RESULT raw <workload> p50|p99 <us>" lines; options in harness.hpp.
#include <linux/futex.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <thread>

#include "harness.hpp"

namespace {

using clock_type = std::chrono::steady_clock;
constexpr std::size_t message = 16;

// _exit: the child must not flush the parent's stdio buffers it inherited.
[[noreturn]] void die(const char* what) {
  std::perror(what);
  ::_exit(1);
}

// Every message is sent and read whole (16 bytes on a local stream socket).
void exactly(ssize_t got, const char* what) {
  if (got != static_cast<ssize_t>(message)) {
    if (got >= 0)
      errno = EPROTO;
    die(what);
  }
}

// Waits in epoll_wait for each message, reads it without blocking and echoes it.
[[noreturn]] void echo_on_epoll(int fd) {
  int ep = ::epoll_create1(EPOLL_CLOEXEC);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = fd;
  if (ep < 0 || ::epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0)
    die("epoll");
  char buf[message];
  for (;;) {
    epoll_event ready[8];
    if (::epoll_wait(ep, ready, 8, -1) <= 0)
      continue;
    auto got = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    if (got == 0)
      ::_exit(0);
    if (got < 0 && errno == EAGAIN)
      continue;
    exactly(got, "echo: recv");
    exactly(::send(fd, buf, message, 0), "echo: send");
  }
}

[[noreturn]] void echo_blocking(int fd) {
  char buf[message];
  for (;;) {
    auto got = ::recv(fd, buf, sizeof buf, MSG_WAITALL);
    if (got == 0)
      ::_exit(0);
    exactly(got, "echo: recv");
    exactly(::send(fd, buf, message, 0), "echo: send");
  }
}

struct child {
  pid_t pid;
  int fd;
  child(pid_t p, int f) : pid{p}, fd{f} {}
  ~child() {
    ::close(fd);
    ::waitpid(pid, nullptr, 0);
  }
  child(const child&) = delete;
  child& operator=(const child&) = delete;
};

child fork_echo(bool on_epoll) {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
    die("socketpair");
  auto pid = ::fork();
  if (pid < 0)
    die("fork");
  if (pid == 0) {
    ::close(sv[0]);
    if (on_epoll)
      echo_on_epoll(sv[1]);
    echo_blocking(sv[1]);
  }
  ::close(sv[1]);
  return {pid, sv[0]};
}

// The parent blocks in recv; the child as `child_on_epoll` says.
void caller_blocks(const bench::options& o, const char* workload, bool child_on_epoll) {
  auto c = fork_echo(child_on_epoll);
  char buf[message] = {};
  bench::round_trips(o, workload, [&] {
    exactly(::send(c.fd, buf, message, 0), "send");
    exactly(::recv(c.fd, buf, message, MSG_WAITALL), "recv");
  });
}

void blocking(const bench::options& o) {
  caller_blocks(o, "pingpong_blocking", false);
}

void child_epoll(const bench::options& o) {
  caller_blocks(o, "pingpong_child_epoll", true);
}

void caller_polls(const bench::options& o) {
  auto c = fork_echo(true);
  char buf[message] = {};
  bench::round_trips(o, "pingpong_caller_polls", [&] {
    exactly(::send(c.fd, buf, message, 0), "send");
    pollfd p{c.fd, POLLIN, 0};
    if (::poll(&p, 1, -1) != 1)
      die("poll");
    exactly(::recv(c.fd, buf, message, MSG_WAITALL), "recv");
  });
}

// The caller's side of pingpong_via_loop: a futex word as requester.cpp keeps one per call.
class handoff {
public:
  static constexpr std::uint32_t pending = 0, answered = 1, sleeping = 2;

  void reset() { word_.store(pending, std::memory_order_relaxed); }

  void answer() {
    if (word_.exchange(answered, std::memory_order_acq_rel) == sleeping)
      ::syscall(SYS_futex, raw(), FUTEX_WAKE_PRIVATE, 1, nullptr, nullptr, 0);
  }

  void wait(bool spin) {
    if (spin) {
      auto until = clock_type::now() + std::chrono::microseconds{100};
      for (unsigned i = 1; word_.load(std::memory_order_acquire) != answered; ++i) {
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#endif
        if (i % 64 == 0 && clock_type::now() > until)
          break;
      }
    }
    for (;;) {
      auto state = word_.load(std::memory_order_acquire);
      if (state == answered)
        return;
      if (state == pending && !word_.compare_exchange_strong(state, sleeping))
        continue;
      ::syscall(SYS_futex, raw(), FUTEX_WAIT_PRIVATE, sleeping, nullptr, nullptr, 0);
    }
  }

private:
  std::uint32_t* raw() { return reinterpret_cast<std::uint32_t*>(&word_); }
  std::atomic<std::uint32_t> word_{pending};
};

void via_loop(const bench::options& o) {
  auto c = fork_echo(true);
  cpu_set_t set;
  CPU_ZERO(&set);
  bool spin = ::sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 1;
  handoff reply;
  std::atomic<bool> done{false};
  std::thread loop{[&] {
    int ep = ::epoll_create1(EPOLL_CLOEXEC);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = c.fd;
    if (ep < 0 || ::epoll_ctl(ep, EPOLL_CTL_ADD, c.fd, &ev) != 0)
      die("epoll");
    char buf[message];
    while (!done.load(std::memory_order_relaxed)) {
      epoll_event ready[8];
      if (::epoll_wait(ep, ready, 8, 50) <= 0)
        continue;
      auto got = ::recv(c.fd, buf, sizeof buf, MSG_DONTWAIT);
      if (got < 0 && errno == EAGAIN)
        continue;
      exactly(got, "loop: recv");  // the child gone (0) ends the run, not a spin
      reply.answer();
    }
    ::close(ep);
  }};
  char buf[message] = {};
  bench::round_trips(o, "pingpong_via_loop", [&] {
    reply.reset();
    exactly(::send(c.fd, buf, message, 0), "send");
    reply.wait(spin);
  });
  done = true;
  loop.join();
}

} // namespace

int main(int argc, char** argv) {
  auto o = bench::parse(argc, argv);
  o.system = "raw";
  ::signal(SIGPIPE, SIG_IGN);
  bench::run(o, {
    {"pingpong_blocking", blocking},
    {"pingpong_child_epoll", child_epoll},
    {"pingpong_via_loop", via_loop},
    {"pingpong_caller_polls", caller_polls},
  });
}
