// mproc's Manager, the same workloads as bench/python/manager.py:
//   manager_dict_1proc  d[k] = i then d[k] over 100 keys, from the root, the manager in its
//                       own process (set+get pairs/s)
//   manager_dict_4proc  the same from 4 child processes at once on one dict, timed from the
//                       first spawn to the last join (pairs/s, all processes together)
// Prints "RESULT mproc <workload> <metric> <value> <unit>" lines; options in harness.hpp.
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include <caf/blocking_actor.hpp>

#include "mproc/actors/manager.hpp"
#include "harness.hpp"
#include "mproc/runtime/actor_registry.hpp"
#include "mproc/runtime/node.hpp"

using clock_type = std::chrono::steady_clock;
using dict = mproc::dict_proxy<std::string, std::int64_t>;

namespace {

void set_get(const dict& d, std::int32_t n) {
  for (std::int32_t i = 0; i < n; ++i) {
    auto key = "k" + std::to_string(i % 100);
    d.set(key, i);
    if (d.at(key) != i)
      std::exit(2);  // another process's write in between: impossible with one writer per key
  }
}

void set_get_worker(caf::blocking_actor*, dict d, std::int32_t n, std::int32_t id) {
  // Each worker its own keys, so that a get sees its own set.
  for (std::int32_t i = 0; i < n; ++i) {
    auto key = "k" + std::to_string(id) + "-" + std::to_string(i % 100);
    d.set(key, i);
    if (d.at(key) != i)
      std::exit(2);
  }
}

double seconds_since(clock_type::time_point t0) {
  return std::chrono::duration<double>(clock_type::now() - t0).count();
}

void manager_dict_1proc(mproc::node& node, const bench::options& o) {
  mproc::manager m{node};
  auto d = m.dict<std::string, std::int64_t>();
  std::int32_t n = o.quick ? 2'000 : 50'000;
  set_get(d, 200);  // warm: the link, the allocator
  auto t0 = clock_type::now();
  set_get(d, n);
  bench::result(o, "manager_dict_1proc", "throughput", n / seconds_since(t0), "pairs/s");
}

void manager_dict_4proc(mproc::node& node, const bench::options& o) {
  mproc::manager m{node};
  auto d = m.dict<std::string, std::int64_t>();
  std::int32_t n = o.quick ? 1'000 : 20'000;
  auto t0 = clock_type::now();
  std::vector<mproc::process> ps;
  for (std::int32_t id = 0; id < 4; ++id)
    ps.push_back(node.spawn_process("set_get_worker", {}, d, n, id));
  for (auto& p : ps) {
    p.join();
    if (p.exitcode() != 0) {
      std::fprintf(stderr, "manager_dict_4proc: a worker ended with %d\n", p.exitcode().value_or(-1));
      std::exit(1);
    }
  }
  bench::result(o, "manager_dict_4proc", "throughput", 4.0 * n / seconds_since(t0), "pairs/s");
}

} // namespace

MPROC_ACTOR(set_get_worker);

int main(int argc, char** argv) {
  mproc::node node{argc, argv};
  bench::run(node, bench::parse(argc, argv), {
    {"manager_dict_1proc", manager_dict_1proc},
    {"manager_dict_4proc", manager_dict_4proc},
  });
}
