// A pool map long enough to be shot at (tests/chaos): 4 workers square 20,000 numbers in
// chunks of 10, each task taking a few microseconds. Killed workers are replaced and their
// chunks retried; a chunk whose workers die more than max_retries times fails its items
// with errc::task_failed. So the program ends in one of two ways, both acceptable:
//   exit 0, "map ok"            every result is right
//   exit 3, "map failed: ..."   a clear error naming what failed
// Anything else (a wrong result, a crash, a hang) is a bug.
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <thread>
#include <vector>

#include "mproc/actors/pool.hpp"
#include "mproc/runtime/node.hpp"

std::int64_t slow_square(std::int64_t x) {
  std::this_thread::sleep_for(std::chrono::microseconds{20});
  return x * x;
}
MPROC_TASK(slow_square);

int main(int argc, char** argv) {
  mproc::node node{argc, argv};
  std::vector<std::int64_t> inputs(20'000);
  for (std::size_t i = 0; i < inputs.size(); ++i)
    inputs[i] = static_cast<std::int64_t>(i);
  mproc::pool pool{node, {.processes = 4}};
  try {
    auto out = pool.map(slow_square, inputs, 10);
    for (std::size_t i = 0; i < inputs.size(); ++i)
      if (out.size() != inputs.size() || out[i] != inputs[i] * inputs[i]) {
        std::printf("map wrong: item %zu\n", i);
        return 1;
      }
  } catch (const mproc::error& e) {
    std::printf("map failed: %s\n", e.what());
    return 3;
  }
  std::printf("map ok\n");
  return 0;
}
