// mproc's Pool, the same workloads as bench/python/pool.py:
//   pool_ready         a pool of 4 until each worker has run a task: four 50 ms sleeps with
//                      chunksize 1, timed from the constructor, minus the 50 ms (median)
//   pool_map_auto      map x*x over 1,000,000 integers, default chunk size, default pool size
//   pool_map_chunk1    the same with chunksize 1
// Prints "RESULT mproc <workload> <metric> <value> <unit>" lines; options in harness.hpp.
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <thread>
#include <vector>

#include "mproc/actors/pool.hpp"
#include "harness.hpp"
#include "mproc/runtime/node.hpp"

using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

namespace {

std::int64_t square(std::int64_t x) {
  return x * x;
}

void nap(std::int32_t ms) {
  std::this_thread::sleep_for(std::chrono::milliseconds{ms});
}

double seconds_since(clock_type::time_point t0) {
  return std::chrono::duration<double>(clock_type::now() - t0).count();
}

void pool_ready(mproc::node& node, const bench::options& o) {
  std::vector<double> ms;
  for (int rep = 0; rep < (o.quick ? 1 : 5); ++rep) {
    auto t0 = clock_type::now();
    mproc::pool pool{node, {.processes = 4}};
    pool.map(nap, std::vector<std::int32_t>(4, 50), 1);
    ms.push_back(seconds_since(t0) * 1e3 - 50);
  }
  bench::result(o, "pool_ready", "median", bench::percentile(ms, 0.5), "ms");
}

void map_squares(mproc::node& node, const bench::options& o, const char* workload,
                 std::size_t chunksize) {
  std::vector<std::int64_t> xs(o.quick ? 100'000 : 1'000'000);
  for (std::size_t i = 0; i < xs.size(); ++i)
    xs[i] = static_cast<std::int64_t>(i);
  mproc::pool pool{node};
  // Every worker up first: Python's Pool() returns with its workers forked.
  pool.map(nap, std::vector<std::int32_t>(pool.processes(), 20), 1);
  auto t0 = clock_type::now();
  auto out = pool.map(square, xs, chunksize);
  auto s = seconds_since(t0);
  if (out.size() != xs.size() || out.back() != xs.back() * xs.back()) {
    std::fprintf(stderr, "%s: wrong results\n", workload);
    std::exit(1);
  }
  bench::result(o, workload, "throughput", static_cast<double>(xs.size()) / s, "items/s");
}

void pool_map_auto(mproc::node& node, const bench::options& o) {
  map_squares(node, o, "pool_map_auto", 0);
}

void pool_map_chunk1(mproc::node& node, const bench::options& o) {
  map_squares(node, o, "pool_map_chunk1", 1);
}

} // namespace

MPROC_TASK(square);
MPROC_TASK(nap);

int main(int argc, char** argv) {
  mproc::node node{argc, argv};
  bench::run(node, bench::parse(argc, argv), {
    {"pool_ready", pool_ready},
    {"pool_map_auto", pool_map_auto},
    {"pool_map_chunk1", pool_map_chunk1},
  });
}
