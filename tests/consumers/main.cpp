// A program of somebody else's project, built against an installed mproc (tests/consumers/
// run.sh): an actor in a child process, a plain function as a process's target with a queue,
// and a pool, through the installed headers and libraries only. Prints "49 [1, 4, 9]" when
// everything links and runs.
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <vector>

#include <caf/event_based_actor.hpp>
#include <mproc/actors/pool.hpp>
#include <mproc/actors/queue.hpp>
#include <mproc/runtime/actor_registry.hpp>
#include <mproc/runtime/node.hpp>

caf::behavior squarer(caf::event_based_actor*) {
  return {[](std::int32_t x) { return x * x; }};
}
MPROC_ACTOR(squarer);

std::int64_t square(std::int64_t x) {
  return x * x;
}
MPROC_TASK(square);

void square_into(mproc::queue<std::int64_t> out, std::int64_t x) {
  out.put(square(x));
}
MPROC_TASK(square_into);

int main(int argc, char** argv) {
  using namespace std::chrono_literals;
  mproc::node node{argc, argv};
  auto p = node.spawn_process("squarer", {.name = "sq-1"});
  auto r = node.request<std::int32_t>(p.actor(), 10s, std::int32_t{7});
  p.terminate();
  p.join(10s);
  mproc::queue<std::int64_t> q{node};
  auto f = node.spawn_process(square_into, {}, q, 7);
  auto from_function = q.get(10s);
  f.join(10s);
  mproc::pool pool{node, {.processes = 2}};
  auto squares = pool.map(square, std::vector<std::int64_t>{1, 2, 3});
  std::printf("%d [%lld, %lld, %lld]\n", r, static_cast<long long>(squares.at(0)),
              static_cast<long long>(squares.at(1)), static_cast<long long>(squares.at(2)));
  return r == 49 && from_function == 49 && f.exitcode() == 0
             && squares == std::vector<std::int64_t>{1, 4, 9}
           ? 0
           : 1;
}
