// The shared-memory baseline: what fork + a pair of single-producer/single-consumer rings in
// one shared mapping, with futex wake-ups only when the other side sleeps, can do on this
// machine — the floor of a local transport that does not go through the kernel for data.
// Frames are a 4-byte length and the payload, as on a socket; a frame larger than the ring
// streams through it. No actors, no msgpack, no exec.
//   pingpong, oneway_single (one frame per message), oneway_batched (100 frames built, then
//   copied in at once), bandwidth_1MiB, bandwidth_64MiB: the same parameters as bench/raw.cpp.
// Prints "RESULT shm <workload> <metric> <value> <unit>" lines; options in harness.hpp.
#include <linux/futex.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <vector>

#include "harness.hpp"

using clock_type = std::chrono::steady_clock;
using bench::options;
using bench::result;

namespace {

[[noreturn]] void die(const char* what) {
  std::perror(what);
  std::exit(1);
}

void futex_wait(std::atomic<std::uint32_t>& word, std::uint32_t expected) {
  ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&word), FUTEX_WAIT, expected, nullptr,
            nullptr, 0);
}

void futex_wake(std::atomic<std::uint32_t>& word) {
  ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&word), FUTEX_WAKE, 1, nullptr, nullptr,
            0);
}

// Spins this many times before sleeping: both sides awake is the only case where spinning
// pays on 2 vCPUs, and then the other side answers within a few hundred nanoseconds.
constexpr int spin_limit = 200;

// One direction: the writer owns `head`, the reader owns `tail`; each sleeps on its own
// futex word when it cannot go on, and the other side wakes it only if it said so.
struct ring {
  static constexpr std::size_t size = 4u << 20;  // a power of two
  alignas(64) std::atomic<std::uint64_t> head{0};  // bytes published
  alignas(64) std::atomic<std::uint64_t> tail{0};  // bytes consumed
  alignas(64) std::atomic<std::uint32_t> reader_sleeps{0};
  alignas(64) std::atomic<std::uint32_t> writer_sleeps{0};
  alignas(64) char data[size];

  // Waits until `ready()`, spinning first, then sleeping on `word`.
  template <class Ready>
  static void await(std::atomic<std::uint32_t>& word, Ready ready) {
    for (int i = 0; i < spin_limit; ++i)
      if (ready())
        return;
    while (!ready()) {
      word.store(1);
      if (ready()) {  // published between the check and the flag: no sleep
        word.store(0);
        return;
      }
      futex_wait(word, 1);
      word.store(0);
    }
  }

  // A load first: an exchange on every publish would bounce the cache line for nothing.
  static void nudge(std::atomic<std::uint32_t>& word) {
    if (word.load() != 0 && word.exchange(0) != 0)
      futex_wake(word);
  }

  // Copies `n` bytes in, publishing as room allows; `publish` false leaves the last part for
  // the next write to publish (a frame's length goes out with its payload).
  void write(const void* src, std::size_t n, bool publish = true) {
    auto p = static_cast<const char*>(src);
    auto h = head.load(std::memory_order_relaxed) + pending_;
    while (n > 0) {
      await(writer_sleeps, [&] { return h - tail.load() < size; });
      auto room = size - (h - tail.load());
      auto at = h & (size - 1);
      auto chunk = std::min({n, room, size - at});
      std::memcpy(data + at, p, chunk);
      p += chunk;
      n -= chunk;
      h += chunk;
      if (n > 0 || publish) {
        head.store(h);
        pending_ = 0;
        nudge(reader_sleeps);
      } else {
        pending_ = h - head.load(std::memory_order_relaxed);
      }
    }
  }

  void read(void* dst, std::size_t n) {
    auto p = static_cast<char*>(dst);
    auto t = tail.load(std::memory_order_relaxed);
    while (n > 0) {
      await(reader_sleeps, [&] { return head.load() != t; });
      auto avail = head.load() - t;
      auto at = t & (size - 1);
      auto chunk = std::min({n, avail, size - at});
      std::memcpy(p, data + at, chunk);
      p += chunk;
      n -= chunk;
      t += chunk;
      tail.store(t);
      nudge(writer_sleeps);
    }
  }

  std::uint64_t pending_ = 0;  // writer's side only: written, not yet published
};

void send_frame(ring& r, const void* payload, std::uint32_t n, bool publish = true) {
  r.write(&n, sizeof n, publish && n == 0);
  if (n > 0)
    r.write(payload, n, publish);
}

std::uint32_t next_frame(ring& r, std::vector<char>& out) {
  std::uint32_t n = 0;
  r.read(&n, sizeof n);
  out.resize(n);
  if (n > 0)
    r.read(out.data(), n);
  return n;
}

struct channel {
  ring to_child;
  ring to_parent;
};

struct child {
  pid_t pid;
  channel* ch;
};

// Forks a child running `serve(channel&)` on a shared mapping made before the fork.
template <class F>
child fork_child(F serve) {
  void* mem = ::mmap(nullptr, sizeof(channel), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                     -1, 0);
  if (mem == MAP_FAILED)
    die("mmap");
  auto* ch = new (mem) channel;
  auto pid = ::fork();
  if (pid < 0)
    die("fork");
  if (pid == 0) {
    serve(*ch);
    ::_exit(0);
  }
  return {pid, ch};
}

void end_child(child c) {
  ::kill(c.pid, SIGKILL);
  ::waitpid(c.pid, nullptr, 0);
  c.ch->~channel();
  ::munmap(c.ch, sizeof(channel));
}

void echo(channel& ch) {
  std::vector<char> f;
  for (;;) {
    auto n = next_frame(ch.to_child, f);
    send_frame(ch.to_parent, f.data(), n);
  }
}

// Counts frames until an empty one, then answers the count.
void counter(channel& ch) {
  std::vector<char> f;
  std::int64_t n = 0;
  while (next_frame(ch.to_child, f) > 0)
    ++n;
  send_frame(ch.to_parent, &n, sizeof n);
}

// Answers every frame with its size.
void measurer(channel& ch) {
  std::vector<char> f;
  for (;;) {
    std::int64_t n = next_frame(ch.to_child, f);
    send_frame(ch.to_parent, &n, sizeof n);
  }
}

void pingpong(const options& o) {
  auto c = fork_child(echo);
  std::vector<char> f;
  std::int32_t x = 1;
  bench::round_trips(o, "pingpong", [&] {
    send_frame(c.ch->to_child, &x, sizeof x);
    next_frame(c.ch->to_parent, f);
  });
  end_child(c);
}

void oneway(const options& o, const char* workload, int batch) {
  auto c = fork_child(counter);
  std::int64_t n = o.quick ? 100'000 : 1'000'000;
  std::int32_t x = 1;
  std::vector<char> out;
  auto t0 = clock_type::now();
  for (std::int64_t i = 0; i < n; i += batch) {
    if (batch == 1) {
      send_frame(c.ch->to_child, &x, sizeof x);
      continue;
    }
    out.clear();  // the batch built first and copied in at once, as raw.cpp writes it
    for (int k = 0; k < batch; ++k) {
      std::uint32_t len = sizeof x;
      out.insert(out.end(), reinterpret_cast<char*>(&len), reinterpret_cast<char*>(&len) + 4);
      out.insert(out.end(), reinterpret_cast<char*>(&x), reinterpret_cast<char*>(&x) + sizeof x);
    }
    c.ch->to_child.write(out.data(), out.size());
  }
  send_frame(c.ch->to_child, nullptr, 0);
  std::vector<char> f;
  next_frame(c.ch->to_parent, f);
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

void bandwidth(const options& o, const char* workload, std::size_t mib, int n) {
  auto c = fork_child(measurer);
  std::vector<char> data(mib << 20, 'b');
  std::vector<char> f;
  bench::transfers(o, workload, mib, n, [&] {
    send_frame(c.ch->to_child, data.data(), static_cast<std::uint32_t>(data.size()));
    next_frame(c.ch->to_parent, f);
  });
  end_child(c);
}

void bandwidth_1mib(const options& o) {
  bandwidth(o, "bandwidth_1MiB", 1, o.quick ? 20 : 200);
}

void bandwidth_64mib(const options& o) {
  bandwidth(o, "bandwidth_64MiB", 64, o.quick ? 2 : 5);
}

} // namespace

int main(int argc, char** argv) {
  auto o = bench::parse(argc, argv);
  o.system = "shm";
  bench::run(o, {
    {"pingpong", pingpong},
    {"oneway_single", oneway_single},
    {"oneway_batched", oneway_batched},
    {"bandwidth_1MiB", bandwidth_1mib},
    {"bandwidth_64MiB", bandwidth_64mib},
  });
}
