// What bench_transport's local rows (transport.cpp) and TCP rows (transport_tcp.cpp) share:
// the measurements, run against the actors transport.cpp registers ("pong", "sink",
// "measure"), wherever they live.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>

#include <caf/actor.hpp>

#include "harness.hpp"
#include "mproc/runtime/node.hpp"

namespace bench {

// Request/reply round trips to `a` (a pong), one at a time (p50, p99).
void measure_pingpong(mproc::node& node, const options& o, const char* workload,
                      const caf::actor& a);

// n items to `a` (a sink; a million, 100,000 with --quick), `batch` per message (1: one
// send per item), until it counted all (throughput).
void measure_oneway(mproc::node& node, const options& o, const char* workload,
                    const caf::actor& a, std::int64_t batch);

// `mib` MiB messages to `measure`, each acknowledged.
template <class Payload>
void transfers_to(mproc::node& node, const options& o, const char* workload,
                  const caf::actor& measure, std::size_t mib, int n) {
  using namespace std::chrono_literals;
  Payload data{mproc::bytes(mib << 20, 'b')};
  node.request<std::int64_t>(measure, 60s, mproc::bytes(1024, 'w'));
  transfers(o, workload, mib, n, [&] {
    auto size = node.request<std::int64_t>(measure, 60s, data);
    if (size != static_cast<std::int64_t>(data.size()))
      std::fprintf(stderr, "%s: child saw %lld bytes\n", workload, static_cast<long long>(size));
  });
}

// The TCP rows: another node in a child process over loopback, with TLS or in clear.
void tcp_pingpong(mproc::node& node, const options& o, bool plaintext);
void tcp_oneway(mproc::node& node, const options& o, bool plaintext);
void tcp_bandwidth(mproc::node& node, const options& o, bool plaintext);
// Encryption's own ceiling: one thread seals and opens 64 MiB of TLS records.
void tls_records(mproc::node& node, const options& o);

} // namespace bench
