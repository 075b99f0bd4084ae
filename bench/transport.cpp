// mproc's transport between a parent and a child process:
//   pingpong          request/reply round trip, one at a time (p50, p99)
//   oneway_single     async int32 messages, parent -> child actor, one send each (throughput)
//   oneway_batched    the same items, 100 per message (a vector<int32>)
//   spawn_first_reply spawn_process() until the child's first reply (median)
//   bandwidth_1MiB    1 MiB messages to the child, each acknowledged (median throughput):
//                     an mproc::blob, the type for large payloads, that the child maps and
//                     reads one byte of per page (a shared blob crosses as a descriptor)
//   bandwidth_64MiB   64 MiB messages, the same
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
#include <algorithm>
#include <condition_variable>
#include <mutex>
#include <chrono>
#include <fstream>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include <caf/blocking_actor.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/stateful_actor.hpp>

#include "mproc/runtime/actor_registry.hpp"
#include "mproc/runtime/blob.hpp"
#include "mproc/runtime/internal/tls.hpp"
#include "harness.hpp"
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

void pingpong(mproc::node& node, const options& o) {
  auto p = node.spawn_process("pong", {});
  measure_pingpong(node, o, "pingpong", p.actor());
  p.terminate();
  p.join(5s);
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

// `mib` MiB messages to `measure`, each acknowledged.
template <class Payload>
void transfers_to(mproc::node& node, const options& o, const char* workload,
                  const caf::actor& measure, std::size_t mib, int n) {
  Payload data{mproc::bytes(mib << 20, 'b')};
  node.request<std::int64_t>(measure, 60s, mproc::bytes(1024, 'w'));
  bench::transfers(o, workload, mib, n, [&] {
    auto size = node.request<std::int64_t>(measure, 60s, data);
    if (size != static_cast<std::int64_t>(data.size()))
      std::fprintf(stderr, "%s: child saw %lld bytes\n", workload, static_cast<long long>(size));
  });
}

template <class Payload>
void bandwidth(mproc::node& node, const options& o, const char* workload, std::size_t mib,
               int n) {
  auto p = node.spawn_process("measure", {});
  transfers_to<Payload>(node, o, workload, p.actor(), mib, n);
  p.terminate();
  p.join(5s);
}

void bandwidth_1mib(mproc::node& node, const options& o) {
  bandwidth<mproc::blob>(node, o, "bandwidth_1MiB", 1, o.quick ? 20 : 200);
}

void bandwidth_64mib(mproc::node& node, const options& o) {
  bandwidth<mproc::blob>(node, o, "bandwidth_64MiB", 64, o.quick ? 2 : 5);
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

// Another node, as a child process that listens on loopback TCP; answers its port.
caf::behavior tcp_node(caf::event_based_actor*, std::string key, bool plaintext) {
  return {[=](caf::get_atom) -> std::int32_t {
    return mproc::this_node().listen(mproc::authkey::from_string(key), "127.0.0.1:0",
                                     plaintext ? mproc::node::link_security::plaintext
                                               : mproc::node::link_security::tls);
  }};
}

// A node in a child process, connected over TLS or in clear; ended when it goes.
class tcp_peer {
  mproc::authkey key_ = mproc::authkey::generate();  // first: the others are made with it
  mproc::process host_;

public:
  mproc::remote_node remote;

  tcp_peer(mproc::node& node, bool plaintext)
    : host_(node.spawn_process("tcp_node", {}, std::string{key_.secret()}, plaintext)),
      remote(node.connect(address(node), key_, 5s,
                          plaintext ? mproc::node::link_security::plaintext
                                    : mproc::node::link_security::tls)) {}
  ~tcp_peer() {
    remote.disconnect();
    host_.terminate();
    host_.join(5s);
  }

private:
  std::string address(mproc::node& node) {
    auto port = node.request<std::int32_t>(host_.actor(), 5s, caf::get_atom::value);
    return "127.0.0.1:" + std::to_string(port);
  }
};

void tcp_pingpong(mproc::node& node, const options& o, bool plaintext) {
  tcp_peer peer{node, plaintext};
  measure_pingpong(node, o, plaintext ? "tcp_pingpong_plaintext" : "tcp_pingpong",
                   peer.remote.spawn("pong"));
}

void tcp_oneway(mproc::node& node, const options& o, bool plaintext) {
  tcp_peer peer{node, plaintext};
  measure_oneway(node, o, plaintext ? "tcp_oneway_plaintext" : "tcp_oneway",
                 peer.remote.spawn("sink"), 1);
}

void tcp_bandwidth(mproc::node& node, const options& o, bool plaintext) {
  tcp_peer peer{node, plaintext};
  transfers_to<mproc::bytes>(node, o,
                             plaintext ? "tcp_bandwidth_64MiB_plaintext" : "tcp_bandwidth_64MiB",
                             peer.remote.spawn("measure"), 64, o.quick ? 2 : 5);
}

// Two sessions keyed alike, handshaken in memory.
struct session_pair {
  using session = mproc::detail::tls::session;
  session client{session::role::client, "bench key, sixteen bytes or more"};
  session server{session::role::server, "bench key, sixteen bytes or more"};
  session_pair() {
    std::string to_server, to_client;
    auto c = client.handshake(nullptr, 0, to_server);
    auto s = session::progress::more;
    while (c != session::progress::failed && s != session::progress::failed
           && (c != session::progress::done || s != session::progress::done)) {
      s = server.handshake(to_server.data(), to_server.size(), to_client);
      to_server.clear();
      c = client.handshake(to_client.data(), to_client.size(), to_server);
      to_client.clear();
    }
    if (c != session::progress::done || s != session::progress::done)
      std::fprintf(stderr, "tls_records: no handshake: %s\n", client.failure().c_str());
  }
};

// 1 MiB per seal, as a link seals a batch: records of 16 KiB.
void tls_records(mproc::node& node, const options& o) {
  (void)node;
  session_pair pair;
  std::string plain(1 << 20, 'p'), sealed, answers;
  std::vector<char> opened(1 << 20);
  bench::transfers(o, "tls_records", 64, o.quick ? 2 : 5, [&] {
    for (int mib = 0; mib < 64; ++mib) {
      sealed.clear();
      pair.client.seal(plain.data(), plain.size(), sealed);
      pair.server.feed(sealed.data(), sealed.size());
      std::size_t got = 0;
      while (got < plain.size()) {
        auto n = pair.server.open(opened.data() + got, opened.size() - got, answers);
        if (n <= 0) {
          std::fprintf(stderr, "tls_records: open failed\n");
          return;
        }
        got += static_cast<std::size_t>(n);
      }
    }
  });
}

} // namespace

MPROC_ACTOR(tcp_node);
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
    {"bandwidth_1MiB_bytes", bandwidth_1mib_bytes},
    {"bandwidth_64MiB_bytes", bandwidth_64mib_bytes},
    {"idle_rss", idle_rss},
    {"spawn_200", spawn_200},
    {"spawn_1000", spawn_1000},
    {"tcp_pingpong", [](mproc::node& n, const options& o) { tcp_pingpong(n, o, false); }},
    {"tcp_pingpong_plaintext", [](mproc::node& n, const options& o) { tcp_pingpong(n, o, true); }},
    {"tcp_oneway", [](mproc::node& n, const options& o) { tcp_oneway(n, o, false); }},
    {"tcp_oneway_plaintext", [](mproc::node& n, const options& o) { tcp_oneway(n, o, true); }},
    {"tcp_bandwidth_64MiB", [](mproc::node& n, const options& o) { tcp_bandwidth(n, o, false); }},
    {"tcp_bandwidth_64MiB_plaintext", [](mproc::node& n, const options& o) { tcp_bandwidth(n, o, true); }},
    {"tls_records", tls_records},
  });
}
