// mproc's transport between a parent and a child process:
//   pingpong          request/reply round trip, one at a time (p50, p99)
//   oneway_small      async int32 messages, parent -> child actor (throughput)
//   spawn_first_reply spawn_process() until the child's first reply (median)
//   bandwidth_64MiB   one 64 MiB message to the child, acknowledged (throughput)
// Prints "RESULT mproc <workload> <metric> <value> <unit>" lines; options in harness.hpp.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include <caf/blocking_actor.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/stateful_actor.hpp>

#include "runtime/actor_registry.hpp"
#include "harness.hpp"
#include "runtime/node.hpp"

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
    [=](caf::get_atom) { return self->state.received; },
  };
}

caf::behavior measure(caf::event_based_actor*) {
  return {[](const mproc::bytes& data) { return static_cast<std::int64_t>(data.size()); }};
}

double micros(clock_type::duration d) {
  return std::chrono::duration<double, std::micro>(d).count();
}

void pingpong(mproc::node& node, const options& o) {
  auto p = node.spawn_process("pong", {});
  caf::scoped_actor self{node.system()};
  auto a = p.actor();
  auto once = [&] {
    self->request(a, 5s, std::int32_t{1}).receive([](std::int32_t) {}, [](caf::error&) {
      std::fprintf(stderr, "pingpong: request failed\n");
    });
  };
  for (int i = 0; i < 1000; ++i)  // warm up caches, allocators, the scheduler
    once();
  std::vector<double> rtt;
  int n = o.quick ? 2000 : 20000;
  rtt.reserve(n);
  for (int i = 0; i < n; ++i) {
    auto t0 = clock_type::now();
    once();
    rtt.push_back(micros(clock_type::now() - t0));
  }
  result(o, "pingpong", "p50", percentile(rtt, 0.50), "us");
  result(o, "pingpong", "p99", percentile(rtt, 0.99), "us");
  p.terminate();
  p.join(5s);
}

void oneway(mproc::node& node, const options& o) {
  auto p = node.spawn_process("sink", {});
  caf::scoped_actor self{node.system()};
  auto a = p.actor();
  std::int64_t n = o.quick ? 100'000 : 1'000'000;
  auto t0 = clock_type::now();
  for (std::int64_t i = 0; i < n; ++i)
    self->send(a, std::int32_t{1});
  std::int64_t got = 0;
  while (got < n)  // the count request queues behind the messages: one round trip suffices
    self->request(a, 60s, caf::get_atom::value).receive([&](std::int64_t c) { got = c; },
                                                        [&](caf::error&) { got = n; });
  auto secs = std::chrono::duration<double>(clock_type::now() - t0).count();
  result(o, "oneway_small", "throughput", static_cast<double>(n) / secs, "msg/s");
  p.terminate();
  p.join(5s);
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

void bandwidth(mproc::node& node, const options& o) {
  auto p = node.spawn_process("measure", {});
  mproc::bytes data(64u << 20, 'b');
  node.request<std::int64_t>(p.actor(), 60s, mproc::bytes(1024, 'w'));
  std::vector<double> mibs;
  int n = o.quick ? 2 : 5;
  for (int i = 0; i < n; ++i) {
    auto t0 = clock_type::now();
    auto size = node.request<std::int64_t>(p.actor(), 60s, data);
    auto secs = std::chrono::duration<double>(clock_type::now() - t0).count();
    if (size != static_cast<std::int64_t>(data.size()))
      std::fprintf(stderr, "bandwidth: child saw %lld bytes\n", static_cast<long long>(size));
    mibs.push_back(64.0 / secs);
  }
  result(o, "bandwidth_64MiB", "median", percentile(mibs, 0.5), "MiB/s");
  p.terminate();
  p.join(5s);
}

} // namespace

MPROC_ACTOR(pong);
MPROC_ACTOR(sink);
MPROC_ACTOR(measure);

int main(int argc, char** argv) {
  mproc::node node{argc, argv};
  bench::run(node, bench::parse(argc, argv), {
    {"pingpong", pingpong},
    {"oneway_small", oneway},
    {"spawn_first_reply", spawn_first_reply},
    {"bandwidth_64MiB", bandwidth},
  });
}
