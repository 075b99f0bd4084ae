// mproc's transport between a parent and a child process:
//   pingpong          request/reply round trip, one at a time (p50, p99)
//   oneway_single     async int32 messages, parent -> child actor, one send each (throughput)
//   oneway_batched    the same items, 100 per message (a vector<int32>)
//   spawn_first_reply spawn_process() until the child's first reply (median)
//   bandwidth_1MiB    1 MiB messages to the child, each acknowledged (median throughput):
//                     an mproc::blob, the type for large payloads, that the child maps and
//                     reads one byte of per page (a shared blob crosses as a descriptor)
//   bandwidth_64MiB   64 MiB messages, the same
//   bandwidth_1MiB_fresh, bandwidth_64MiB_fresh   the same, but a new blob per message, written
//                     by the sender from a buffer of its own (the copy is timed)
//   bandwidth_1MiB_bytes, bandwidth_64MiB_bytes   the same as mproc::bytes (std::vector<char>),
//                     which the child receives as a copy of its own
//   idle_rss          resident memory of an idle child process (median of 5)
//   spawn_200         200 children started, each answering once, all joined (seconds)
//   spawn_1000        the same with 1,000 children; fails when it leaves a zombie or a
//                     descriptor behind
//   tcp_pingpong      pingpong with an actor on another node over loopback TCP (p50, p99),
//                     TLS 1.3 keyed by the authkey (the default)
//   tcp_oneway        oneway_single to a node over loopback TCP (throughput)
//   tcp_bandwidth_64MiB  64 MiB mproc::bytes messages to a node, each acknowledged
//   tcp_*_plaintext   the same three in clear (link_security::plaintext): the cost of TLS
//   tls_records       one thread seals 64 MiB into TLS records and opens them again, as
//                     the two ends of a link do (MiB/s): encryption's own ceiling on a link
// Prints "RESULT mproc <workload> <metric> <value> <unit>" lines; options in harness.hpp.
#include <condition_variable>
#include <mutex>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include <caf/event_based_actor.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/stateful_actor.hpp>

#include "mproc/runtime/actor_registry.hpp"
#include "mproc/runtime/blob.hpp"
#include "harness.hpp"
#include "transport.hpp"
#include "mproc/runtime/node.hpp"

using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

using bench::options;
using bench::percentile;
using bench::result;

namespace {

caf::behavior pong(caf::event_based_actor*) {
  return {[](std::int32_t x) { return x; }};
}

struct sink_state {
  std::int64_t received = 0;
};

// Counts messages; answers the count when asked.
caf::behavior sink(caf::stateful_actor<sink_state>* self) {
  return {
    [=](std::int32_t) { ++self->state.received; },
    [=](const std::vector<std::int32_t>& batch) {
      self->state.received += static_cast<std::int64_t>(batch.size());
    },
    [=](caf::get_atom) { return self->state.received; },
  };
}

// Answers one message, then ends with its process.
caf::behavior once(caf::event_based_actor* self) {
  return {[=](std::int32_t x) {
    self->quit();
    return x;
  }};
}

caf::behavior measure(caf::event_based_actor*) {
  return {
    [](const mproc::bytes& data) { return static_cast<std::int64_t>(data.size()); },
    [](const mproc::blob& data) {  // mapped, not copied: touched once per page to count
      volatile char sink = 0;
      for (std::size_t i = 0; i < data.size(); i += 4096)
        sink = sink + data.data()[i];
      return static_cast<std::int64_t>(data.size());
    },
  };
}

double micros(clock_type::duration d) {
  return std::chrono::duration<double, std::micro>(d).count();
}

} // namespace

namespace bench {

// Request/reply round trips to `a` (a pong), one at a time.
void measure_pingpong(mproc::node& node, const options& o, const char* workload,
                      const caf::actor& a) {
  // node::request, the blocking face for plain code, as a user's main() asks an actor.
  auto once = [&] {
    try {
      node.request<std::int32_t>(a, 5s, std::int32_t{1});
    } catch (const mproc::error&) {
      std::fprintf(stderr, "%s: request failed\n", workload);
    }
  };
  bench::round_trips(o, workload, once);
}

// n items to `a` (a sink), `batch` per message (1: one send per item), until it counted all.
void measure_oneway(mproc::node& node, const options& o, const char* workload,
                    const caf::actor& a, std::int64_t batch) {
  caf::scoped_actor self{node.system()};
  std::int64_t n = o.quick ? 100'000 : 1'000'000;
  auto t0 = clock_type::now();
  if (batch == 1) {
    for (std::int64_t i = 0; i < n; ++i)
      self->send(a, std::int32_t{1});
  } else {
    for (std::int64_t i = 0; i < n; i += batch)
      self->send(a, std::vector<std::int32_t>(static_cast<std::size_t>(batch), 1));
  }
  std::int64_t got = 0;
  while (got < n)  // the count request queues behind the messages: one round trip suffices
    self->request(a, 60s, caf::get_atom::value).receive([&](std::int64_t c) { got = c; },
                                                        [&](caf::error&) { got = n; });
  auto secs = std::chrono::duration<double>(clock_type::now() - t0).count();
  result(o, workload, "throughput", static_cast<double>(n) / secs, "msg/s");
}

} // namespace bench

namespace {

void pingpong(mproc::node& node, const options& o) {
  auto p = node.spawn_process("pong", {});
  measure_pingpong(node, o, "pingpong", p.actor());
  p.terminate();
  p.join(5s);
}

void oneway(mproc::node& node, const options& o, const char* workload, std::int64_t batch) {
  auto p = node.spawn_process("sink", {});
  measure_oneway(node, o, workload, p.actor(), batch);
  p.terminate();
  p.join(5s);
}

void oneway_single(mproc::node& node, const options& o) {
  oneway(node, o, "oneway_single", 1);
}

void oneway_batched(mproc::node& node, const options& o) {
  oneway(node, o, "oneway_batched", 100);
}

void spawn_first_reply(mproc::node& node, const options& o) {
  std::vector<double> ms;
  int n = o.quick ? 5 : 30;
  for (int i = 0; i < n; ++i) {
    auto t0 = clock_type::now();
    auto p = node.spawn_process("pong", {});
    node.request<std::int32_t>(p.actor(), 10s, std::int32_t{1});
    ms.push_back(micros(clock_type::now() - t0) / 1000.0);
    p.terminate();
    p.join(5s);
  }
  result(o, "spawn_first_reply", "median", percentile(ms, 0.5), "ms");
}

template <class Payload>
void bandwidth(mproc::node& node, const options& o, const char* workload, std::size_t mib,
               int n) {
  auto p = node.spawn_process("measure", {});
  bench::transfers_to<Payload>(node, o, workload, p.actor(), mib, n);
  p.terminate();
  p.join(5s);
}

void bandwidth_1mib(mproc::node& node, const options& o) {
  bandwidth<mproc::blob>(node, o, "bandwidth_1MiB", 1, o.quick ? 20 : 200);
}

void bandwidth_64mib(mproc::node& node, const options& o) {
  bandwidth<mproc::blob>(node, o, "bandwidth_64MiB", 64, o.quick ? 2 : 5);
}

// A new blob per message, written by the sender from a buffer of its own, as a program
// streaming new data does (raw too copies its buffer into the socket every time).
void fresh_bandwidth(mproc::node& node, const options& o, const char* workload, std::size_t mib,
                     int n) {
  auto p = node.spawn_process("measure", {});
  mproc::bytes source(mib << 20, 'f');
  node.request<std::int64_t>(p.actor(), 60s, mproc::bytes(1024, 'w'));
  bench::transfers(o, workload, mib, n, [&] {
    mproc::blob_writer w{source.size()};
    std::memcpy(w.data(), source.data(), source.size());
    auto size = node.request<std::int64_t>(p.actor(), 60s, std::move(w).finish());
    if (size != static_cast<std::int64_t>(source.size()))
      std::fprintf(stderr, "%s: child saw %lld bytes\n", workload, static_cast<long long>(size));
  });
  p.terminate();
  p.join(5s);
}

void bandwidth_1mib_fresh(mproc::node& node, const options& o) {
  fresh_bandwidth(node, o, "bandwidth_1MiB_fresh", 1, o.quick ? 20 : 200);
}

void bandwidth_64mib_fresh(mproc::node& node, const options& o) {
  fresh_bandwidth(node, o, "bandwidth_64MiB_fresh", 64, o.quick ? 3 : 7);
}

void bandwidth_1mib_bytes(mproc::node& node, const options& o) {
  bandwidth<mproc::bytes>(node, o, "bandwidth_1MiB_bytes", 1, o.quick ? 20 : 200);
}

void bandwidth_64mib_bytes(mproc::node& node, const options& o) {
  bandwidth<mproc::bytes>(node, o, "bandwidth_64MiB_bytes", 64, o.quick ? 2 : 5);
}


void idle_rss(mproc::node& node, const options& o) {
  std::vector<double> mib;
  for (int i = 0; i < (o.quick ? 1 : 5); ++i) {
    auto p = node.spawn_process("pong", {});
    node.request<std::int32_t>(p.actor(), 10s, std::int32_t{1});  // up and serving
    std::this_thread::sleep_for(100ms);
    mib.push_back(bench::rss_mib(p.pid()));
    p.terminate();
    p.join(5s);
  }
  result(o, "idle_rss", "median", percentile(mib, 0.5), "MiB");
}

[[noreturn]] void fail(const std::string& why) {
  std::fprintf(stderr, "%s\n", why.c_str());
  std::exit(1);
}

// Starts every child before waiting for any (as Python's start() returns once the child
// is forked), so that children start up side by side.
void spawn_n(mproc::node& node, const options& o, const char* workload, int n) {
  bench::raise_fd_limit(4 * static_cast<std::size_t>(n) + 256);
  {  // counted once the node is settled (its fork server started with it, asynchronously)
    auto warm = node.spawn_process("once", {});
    node.request<std::int32_t>(warm.actor(), 60s, std::int32_t{1});
    warm.join();
  }
  auto fds_before = bench::open_fds();
  auto t0 = clock_type::now();
  std::mutex m;
  std::condition_variable all_started;
  int started = 0;
  caf::error failure;
  std::vector<mproc::process> children;
  children.reserve(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) {
    children.emplace_back(node, "once", mproc::process_options{});
    children.back().start([&](caf::error err) {
      std::lock_guard guard{m};
      if (err)
        failure = err;
      if (++started == n)
        all_started.notify_one();
    });
  }
  {
    std::unique_lock lock{m};
    all_started.wait(lock, [&] { return started == n; });
    if (failure)
      fail(std::string{workload} + ": a child did not start: " + node.system().render(failure));
  }
  for (auto& c : children)
    node.request<std::int32_t>(c.actor(), 60s, std::int32_t{1});
  for (auto& c : children)
    c.join();
  auto secs = std::chrono::duration<double>(clock_type::now() - t0).count();
  children.clear();
  if (bench::zombie_children() != 0 || bench::open_fds() != fds_before)
    fail(std::string{workload} + ": children left " + std::to_string(bench::zombie_children())
         + " zombies and " + std::to_string(bench::open_fds()) + " descriptors (before: "
         + std::to_string(fds_before) + ")");
  result(o, workload, "total", secs, "s");
}

void spawn_200(mproc::node& node, const options& o) {
  spawn_n(node, o, "spawn_200", o.quick ? 20 : 200);
}

void spawn_1000(mproc::node& node, const options& o) {
  spawn_n(node, o, "spawn_1000", o.quick ? 50 : 1000);
}

} // namespace

MPROC_ACTOR(pong);
MPROC_ACTOR(sink);
MPROC_ACTOR(measure);
MPROC_ACTOR(once);

int main(int argc, char** argv) {
  mproc::node node{argc, argv};
  bench::run(node, bench::parse(argc, argv), {
    {"pingpong", pingpong},
    {"oneway_single", oneway_single},
    {"oneway_batched", oneway_batched},
    {"spawn_first_reply", spawn_first_reply},
    {"bandwidth_1MiB", bandwidth_1mib},
    {"bandwidth_64MiB", bandwidth_64mib},
    {"bandwidth_1MiB_fresh", bandwidth_1mib_fresh},
    {"bandwidth_64MiB_fresh", bandwidth_64mib_fresh},
    {"bandwidth_1MiB_bytes", bandwidth_1mib_bytes},
    {"bandwidth_64MiB_bytes", bandwidth_64mib_bytes},
    {"idle_rss", idle_rss},
    {"spawn_200", spawn_200},
    {"spawn_1000", spawn_1000},
    {"tcp_pingpong", [](mproc::node& n, const options& o) { bench::tcp_pingpong(n, o, false); }},
    {"tcp_pingpong_plaintext", [](mproc::node& n, const options& o) { bench::tcp_pingpong(n, o, true); }},
    {"tcp_oneway", [](mproc::node& n, const options& o) { bench::tcp_oneway(n, o, false); }},
    {"tcp_oneway_plaintext", [](mproc::node& n, const options& o) { bench::tcp_oneway(n, o, true); }},
    {"tcp_bandwidth_64MiB", [](mproc::node& n, const options& o) { bench::tcp_bandwidth(n, o, false); }},
    {"tcp_bandwidth_64MiB_plaintext", [](mproc::node& n, const options& o) { bench::tcp_bandwidth(n, o, true); }},
    {"tls_records", bench::tls_records},
  });
}
