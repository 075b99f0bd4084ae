// mproc's multiprocessing patterns:
//   producer_consumer  5 producer and 5 consumer processes, 100,000 items per producer
//                      through one Queue, timed from the first spawn to the last join
//   pipe_oneway        small messages, child -> parent through a Pipe (throughput)
//   pipe_pingpong      send/recv round trip through a Pipe (p50, p99)
//   restart            kill -9 of a supervised worker until its replacement answers a request
//                      through the supervisor's stable reference (median)
//   lock_uncontended   acquire + release of a Lock nobody else uses (pairs/s)
//   lock_contended     two processes adding one at a time to a shared counter under one
//                      Lock, timed from the first spawn to the last join (increments/s)
// Prints "RESULT mproc <workload> <metric> <value> <unit>" lines; options in harness.hpp.
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <caf/blocking_actor.hpp>
#include <caf/event_based_actor.hpp>

#include "mproc/actors/lock.hpp"
#include "mproc/actors/pipe.hpp"
#include "mproc/actors/queue.hpp"
#include "mproc/actors/shared_value.hpp"
#include "mproc/runtime/actor_registry.hpp"
#include "mproc/runtime/supervisor.hpp"
#include "harness.hpp"
#include "mproc/runtime/node.hpp"

using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

using item = std::pair<std::int32_t, std::int32_t>;
using slot = std::optional<item>;

using bench::options;
using bench::percentile;
using bench::result;

namespace {

void pc_producer(caf::blocking_actor*, std::int32_t id, std::int32_t n, mproc::queue<slot> q) {
  for (std::int32_t i = 0; i < n; ++i)
    q.put(item{i, id});
}

void pc_consumer(caf::blocking_actor*, mproc::queue<slot> q) {
  for (;;) {
    int sentinels = 0;
    for (auto& s : q.get_many(256))
      sentinels += s ? 0 : 1;
    if (sentinels > 0) {
      for (int extra = 1; extra < sentinels; ++extra)
        q.put(std::nullopt);
      return;
    }
  }
}

void pipe_sender(caf::blocking_actor*, mproc::connection c, std::int32_t n) {
  for (std::int32_t i = 0; i < n; ++i)
    c.send(i);
  c.send(std::int32_t{-1});
}

caf::behavior pid_teller(caf::event_based_actor*) {
  return {[](caf::get_atom) { return static_cast<std::int32_t>(::getpid()); }};
}

void pipe_echo(caf::blocking_actor*, mproc::connection c) {
  try {
    for (;;)
      c.send_message(c.recv());
  } catch (const mproc::error&) {
  }
}

void producer_consumer(mproc::node& node, const options& o) {
  std::int32_t n = o.quick ? 10'000 : 100'000;
  auto t0 = clock_type::now();
  mproc::queue<slot> q{node};
  std::vector<mproc::process> procs;
  for (std::int32_t p = 0; p < 5; ++p)
    procs.push_back(node.spawn_process("pc_producer", {}, p, n, q));
  for (int c = 0; c < 5; ++c)
    procs.push_back(node.spawn_process("pc_consumer", {}, q));
  for (int p = 0; p < 5; ++p)
    procs[static_cast<std::size_t>(p)].join();
  for (int c = 0; c < 5; ++c)
    q.put(std::nullopt);
  for (auto& p : procs)
    p.join();
  auto secs = std::chrono::duration<double>(clock_type::now() - t0).count();
  result(o, "producer_consumer", "throughput", 5.0 * n / secs, "items/s");
}

void pipe_oneway(mproc::node& node, const options& o) {
  std::int32_t n = o.quick ? 100'000 : 1'000'000;
  auto [here, there] = mproc::pipe(node, false);
  auto t0 = clock_type::now();
  auto p = node.spawn_process("pipe_sender", {}, there, n);
  std::int64_t got = 0;
  while (here.recv_as<std::int32_t>() >= 0)
    ++got;
  auto secs = std::chrono::duration<double>(clock_type::now() - t0).count();
  if (got != n)
    std::fprintf(stderr, "pipe_oneway: received %lld of %d\n", static_cast<long long>(got), n);
  result(o, "pipe_oneway", "throughput", static_cast<double>(n) / secs, "msg/s");
  p.join();
}

void pipe_pingpong(mproc::node& node, const options& o) {
  auto [here, there] = mproc::pipe(node);
  auto p = node.spawn_process("pipe_echo", {}, there);
  auto once = [&] {
    here.send(std::int32_t{1});
    here.recv();
  };
  for (int i = 0; i < 500; ++i)
    once();
  std::vector<double> us;
  int n = o.quick ? 1000 : 10000;
  for (int i = 0; i < n; ++i) {
    auto t0 = clock_type::now();
    once();
    us.push_back(std::chrono::duration<double, std::micro>(clock_type::now() - t0).count());
  }
  result(o, "pipe_pingpong", "p50", percentile(us, 0.5), "us");
  result(o, "pipe_pingpong", "p99", percentile(us, 0.99), "us");
  here.close();
  p.join();
}

void restart(mproc::node& node, const options& o) {
  mproc::supervisor sup{node, {.intensity = 1000, .period = 1s}, {{.id = "w", .actor = "pid_teller"}}};
  auto ref = sup.child("w");
  std::vector<double> ms;
  int n = o.quick ? 5 : 30;
  for (int i = 0; i < n; ++i) {
    auto old = node.request<std::int32_t>(ref, 5s, caf::get_atom::value);
    auto t0 = clock_type::now();
    ::kill(old, SIGKILL);
    for (;;) {  // not_running while it restarts; the old pid until its death is noticed
      try {
        if (node.request<std::int32_t>(ref, 5s, caf::get_atom::value) != old)
          break;
      } catch (const mproc::error&) {
      }
      std::this_thread::sleep_for(100us);
    }
    ms.push_back(std::chrono::duration<double, std::milli>(clock_type::now() - t0).count());
  }
  result(o, "restart", "median", percentile(ms, 0.5), "ms");
  sup.stop();
}

void lock_uncontended(mproc::node&, const options& o) {
  mproc::lock l;
  int n = o.quick ? 100'000 : 2'000'000;
  auto t0 = clock_type::now();
  for (int i = 0; i < n; ++i) {
    (void)l.acquire();
    l.release();
  }
  auto secs = std::chrono::duration<double>(clock_type::now() - t0).count();
  result(o, "lock_uncontended", "throughput", n / secs, "pairs/s");
}

void lock_adder(caf::blocking_actor*, mproc::lock l, mproc::shared_value<std::int64_t> counter,
                std::int32_t n) {
  for (std::int32_t i = 0; i < n; ++i) {
    (void)l.acquire();
    ++counter.raw();
    l.release();
  }
}

void lock_contended(mproc::node& node, const options& o) {
  std::int32_t n = o.quick ? 20'000 : 200'000;
  mproc::lock l;
  mproc::shared_value<std::int64_t> counter{0, false};
  auto t0 = clock_type::now();
  auto a = node.spawn_process("lock_adder", {}, l, counter, n);
  auto b = node.spawn_process("lock_adder", {}, l, counter, n);
  a.join();
  b.join();
  auto secs = std::chrono::duration<double>(clock_type::now() - t0).count();
  if (counter.get() != 2 * n)
    std::fprintf(stderr, "lock_contended: %lld increments of %d\n",
                 static_cast<long long>(counter.get()), 2 * n);
  result(o, "lock_contended", "throughput", 2.0 * n / secs, "increments/s");
}

} // namespace

MPROC_ACTOR(lock_adder);
MPROC_ACTOR(pid_teller);
MPROC_ACTOR(pc_producer);
MPROC_ACTOR(pc_consumer);
MPROC_ACTOR(pipe_sender);
MPROC_ACTOR(pipe_echo);

int main(int argc, char** argv) {
  mproc::node node{argc, argv};
  bench::run(node, bench::parse(argc, argv), {
    {"producer_consumer", producer_consumer},
    {"pipe_oneway", pipe_oneway},
    {"pipe_pingpong", pipe_pingpong},
    {"restart", restart},
    {"lock_uncontended", lock_uncontended},
    {"lock_contended", lock_contended},
  });
}
