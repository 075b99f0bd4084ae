// The raw baseline: what fork + socketpair with blocking read/write of 4-byte-length frames
// can do on this machine — the transport's practical limit. No actors, no msgpack, no exec.
// The same workloads and parameters as bench/transport.cpp and transport_tcp.cpp (and restart
// as in patterns.cpp):
//   pingpong, oneway_single (one write per frame), oneway_batched (100 frames per write),
//   spawn_first_reply (fork), bandwidth_1MiB, bandwidth_64MiB, idle_rss, spawn_200, spawn_1000,
//   restart,
//   tcp_pingpong (the same ping-pong over loopback TCP with TCP_NODELAY).
// Prints "RESULT raw <workload> <metric> <value> <unit>" lines; options in harness.hpp.
#include <signal.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "harness.hpp"

using clock_type = std::chrono::steady_clock;
using bench::options;
using bench::percentile;
using bench::result;

namespace {

[[noreturn]] void die(const char* what) {
  std::perror(what);
  std::exit(1);
}

void write_all(int fd, const char* p, std::size_t n) {
  while (n > 0) {
    auto w = ::write(fd, p, n);
    if (w < 0)
      die("write");
    p += w;
    n -= static_cast<std::size_t>(w);
  }
}

// Reads frames through a buffer, as a transport's reader would.
class frame_reader {
public:
  explicit frame_reader(int fd) : fd_(fd), buf_(1 << 16) {}

  // The next frame's payload; false at EOF.
  bool next(std::vector<char>& out) {
    std::uint32_t be = 0;
    if (!take(reinterpret_cast<char*>(&be), 4))
      return false;
    out.resize(ntohl(be));
    return take(out.data(), out.size());
  }

private:
  bool take(char* dst, std::size_t n) {
    while (n > 0) {
      if (pos_ == end_) {
        if (n >= buf_.size()) {  // large payloads straight into place
          auto r = ::read(fd_, dst, n);
          if (r <= 0)
            return false;
          dst += r;
          n -= static_cast<std::size_t>(r);
          continue;
        }
        auto r = ::read(fd_, buf_.data(), buf_.size());
        if (r <= 0)
          return false;
        pos_ = 0;
        end_ = static_cast<std::size_t>(r);
      }
      auto k = std::min(n, end_ - pos_);
      std::memcpy(dst, buf_.data() + pos_, k);
      pos_ += k;
      dst += k;
      n -= k;
    }
    return true;
  }

  int fd_;
  std::vector<char> buf_;
  std::size_t pos_ = 0, end_ = 0;
};

void append_frame(std::vector<char>& out, const void* payload, std::uint32_t n) {
  auto be = htonl(n);
  auto* b = reinterpret_cast<const char*>(&be);
  out.insert(out.end(), b, b + 4);
  out.insert(out.end(), static_cast<const char*>(payload), static_cast<const char*>(payload) + n);
}

void send_frame(int fd, const void* payload, std::uint32_t n) {
  auto be = htonl(n);
  iovec iov[2] = {{&be, 4}, {const_cast<void*>(payload), n}};
  std::size_t total = 4 + n;
  auto w = ::writev(fd, iov, 2);
  if (w < 0)
    die("writev");
  if (static_cast<std::size_t>(w) < total) {  // a large frame: finish it plainly
    auto done = static_cast<std::size_t>(w);
    if (done < 4)
      write_all(fd, reinterpret_cast<const char*>(&be) + done, 4 - done), done = 4;
    write_all(fd, static_cast<const char*>(payload) + (done - 4), n - (done - 4));
  }
}

struct child {
  pid_t pid;
  int fd;
};

// Forks a child running `serve(fd)` on its end of a socketpair.
template <class F>
child fork_child(F serve) {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
    die("socketpair");
  auto pid = ::fork();
  if (pid < 0)
    die("fork");
  if (pid == 0) {
    ::close(sv[0]);
    serve(sv[1]);
    ::_exit(0);
  }
  ::close(sv[1]);
  return {pid, sv[0]};
}

void end_child(child c) {
  ::close(c.fd);
  ::kill(c.pid, SIGKILL);
  ::waitpid(c.pid, nullptr, 0);
}

void echo(int fd) {
  frame_reader in{fd};
  std::vector<char> f;
  while (in.next(f))
    send_frame(fd, f.data(), static_cast<std::uint32_t>(f.size()));
}

// Counts frames until an empty one, then answers the count.
void counter(int fd) {
  frame_reader in{fd};
  std::vector<char> f;
  std::int64_t n = 0;
  while (in.next(f) && !f.empty())
    ++n;
  send_frame(fd, &n, sizeof n);
}

// Answers every frame with its size.
void measurer(int fd) {
  frame_reader in{fd};
  std::vector<char> f;
  while (in.next(f)) {
    std::int64_t n = static_cast<std::int64_t>(f.size());
    send_frame(fd, &n, sizeof n);
  }
}

void ping(int fd, frame_reader& in, std::vector<char>& f) {
  std::int32_t x = 1;
  send_frame(fd, &x, sizeof x);
  if (!in.next(f))
    die("pingpong: child gone");
}

double micros(clock_type::duration d) {
  return std::chrono::duration<double, std::micro>(d).count();
}

// Round trips to an echoing child, one at a time; ends the child.
void measure_pingpong(const options& o, const char* workload, child c) {
  frame_reader in{c.fd};
  std::vector<char> f;
  bench::round_trips(o, workload, [&] { ping(c.fd, in, f); });
  end_child(c);
}

void pingpong(const options& o) {
  measure_pingpong(o, "pingpong", fork_child(echo));
}

// A child that connects to this process over loopback TCP and runs `serve(fd)`.
template <class F>
child fork_tcp_child(F serve) {
  int lfd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in at{};
  at.sin_family = AF_INET;
  at.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof at;
  if (lfd < 0 || ::bind(lfd, reinterpret_cast<sockaddr*>(&at), sizeof at) != 0
      || ::listen(lfd, 1) != 0 || ::getsockname(lfd, reinterpret_cast<sockaddr*>(&at), &len) != 0)
    die("tcp listen");
  int one = 1;
  auto pid = ::fork();
  if (pid < 0)
    die("fork");
  if (pid == 0) {
    ::close(lfd);
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0 || ::connect(fd, reinterpret_cast<sockaddr*>(&at), sizeof at) != 0)
      die("tcp connect");
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    serve(fd);
    ::_exit(0);
  }
  int fd = ::accept4(lfd, nullptr, nullptr, SOCK_CLOEXEC);
  if (fd < 0)
    die("tcp accept");
  ::close(lfd);
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return {pid, fd};
}

void tcp_pingpong(const options& o) {
  measure_pingpong(o, "tcp_pingpong", fork_tcp_child(echo));
}

void oneway(const options& o, const char* workload, int batch) {
  auto c = fork_child(counter);
  std::int64_t n = o.quick ? 100'000 : 1'000'000;
  std::int32_t x = 1;
  std::vector<char> out;
  auto t0 = clock_type::now();
  for (std::int64_t i = 0; i < n; i += batch) {
    out.clear();
    for (int k = 0; k < batch; ++k)
      append_frame(out, &x, sizeof x);
    write_all(c.fd, out.data(), out.size());  // one write per batch
  }
  send_frame(c.fd, nullptr, 0);
  frame_reader in{c.fd};
  std::vector<char> f;
  if (!in.next(f))
    die("oneway: child gone");
  auto secs = std::chrono::duration<double>(clock_type::now() - t0).count();
  result(o, workload, "throughput", static_cast<double>(n) / secs, "msg/s");
  end_child(c);
}

void oneway_single(const options& o) {
  oneway(o, "oneway_single", 1);
}

void oneway_batched(const options& o) {
  oneway(o, "oneway_batched", 100);
}

void hello(int fd) {
  std::int32_t x = 1;
  send_frame(fd, &x, sizeof x);
}

void spawn_first_reply(const options& o) {
  std::vector<double> ms;
  std::vector<char> f;
  for (int i = 0; i < (o.quick ? 5 : 30); ++i) {
    auto t0 = clock_type::now();
    auto c = fork_child(hello);
    frame_reader in{c.fd};
    if (!in.next(f))
      die("spawn: no reply");
    ms.push_back(micros(clock_type::now() - t0) / 1000);
    ::close(c.fd);
    ::waitpid(c.pid, nullptr, 0);
  }
  result(o, "spawn_first_reply", "median", percentile(ms, 0.5), "ms");
}

void bandwidth(const options& o, const char* workload, std::size_t mib, int n) {
  auto c = fork_child(measurer);
  std::vector<char> data(mib << 20, 'b');
  frame_reader in{c.fd};
  std::vector<char> f;
  bench::transfers(o, workload, mib, n, [&] {
    send_frame(c.fd, data.data(), static_cast<std::uint32_t>(data.size()));
    if (!in.next(f))
      die("bandwidth: child gone");
  });
  end_child(c);
}

void bandwidth_1mib(const options& o) {
  bandwidth(o, "bandwidth_1MiB", 1, o.quick ? 20 : 200);
}

void bandwidth_64mib(const options& o) {
  bandwidth(o, "bandwidth_64MiB", 64, o.quick ? 2 : 5);
}


void idle_rss(const options& o) {
  std::vector<double> mib;
  for (int i = 0; i < (o.quick ? 1 : 5); ++i) {
    auto c = fork_child(echo);
    frame_reader in{c.fd};
    std::vector<char> f;
    ping(c.fd, in, f);
    std::this_thread::sleep_for(std::chrono::milliseconds{100});
    mib.push_back(bench::rss_mib(c.pid));
    end_child(c);
  }
  result(o, "idle_rss", "median", percentile(mib, 0.5), "MiB");
}

void spawn_n(const options& o, const char* workload, int n) {
  bench::raise_fd_limit(4 * static_cast<std::size_t>(n) + 256);
  auto t0 = clock_type::now();
  std::vector<child> children;
  for (int i = 0; i < n; ++i)
    children.push_back(fork_child(hello));
  std::vector<char> f;
  for (auto& c : children) {
    frame_reader in{c.fd};
    if (!in.next(f))
      die("spawn: no reply");
  }
  for (auto& c : children) {
    ::close(c.fd);
    ::waitpid(c.pid, nullptr, 0);
  }
  result(o, workload, "total", std::chrono::duration<double>(clock_type::now() - t0).count(),
         "s");
}

void spawn_200(const options& o) {
  spawn_n(o, "spawn_200", o.quick ? 20 : 200);
}

void spawn_1000(const options& o) {
  spawn_n(o, "spawn_1000", o.quick ? 50 : 1000);
}

// kill -9 of a serving child, noticed by waitpid, replaced by a new fork, until it answers.
void restart(const options& o) {
  auto c = fork_child(echo);
  std::vector<double> ms;
  std::vector<char> f;
  for (int i = 0; i < (o.quick ? 5 : 20); ++i) {
    auto t0 = clock_type::now();
    ::kill(c.pid, SIGKILL);
    ::waitpid(c.pid, nullptr, 0);
    ::close(c.fd);
    c = fork_child(echo);
    frame_reader in{c.fd};
    ping(c.fd, in, f);
    ms.push_back(micros(clock_type::now() - t0) / 1000);
  }
  result(o, "restart", "median", percentile(ms, 0.5), "ms");
  end_child(c);
}

} // namespace

int main(int argc, char** argv) {
  auto o = bench::parse(argc, argv);
  o.system = "raw";
  ::signal(SIGPIPE, SIG_IGN);
  bench::run(o, {
    {"pingpong", pingpong},
    {"oneway_single", oneway_single},
    {"oneway_batched", oneway_batched},
    {"spawn_first_reply", spawn_first_reply},
    {"bandwidth_1MiB", bandwidth_1mib},
    {"bandwidth_64MiB", bandwidth_64mib},
    {"idle_rss", idle_rss},
    {"spawn_200", spawn_200},
    {"spawn_1000", spawn_1000},
    {"restart", restart},
    {"tcp_pingpong", tcp_pingpong},
  });
}
