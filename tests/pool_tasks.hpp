// Tasks and helpers that test_pool.cpp and test_pool_workers.cpp share. Each test program
// includes this once, so each registers these tasks once.
#pragma once

#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <thread>
#include <vector>

#include "mproc/runtime/node.hpp"
#include "mproc/runtime/task.hpp"

namespace pool_tasks {

inline std::int64_t square(std::int64_t x) {
  return x * x;
}

inline std::int32_t slow_pid(std::int32_t ms) {
  std::this_thread::sleep_for(std::chrono::milliseconds{ms});
  return ::getpid();
}

inline std::int64_t slow_double(std::int64_t x) {
  std::this_thread::sleep_for(std::chrono::milliseconds{20});
  return 2 * x;
}

inline std::vector<std::int64_t> iota(std::int64_t n) {
  std::vector<std::int64_t> xs(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i)
    xs[static_cast<std::size_t>(i)] = i;
  return xs;
}

inline std::vector<std::int64_t> squares_of(const std::vector<std::int64_t>& xs) {
  std::vector<std::int64_t> out;
  for (auto x : xs)
    out.push_back(x * x);
  return out;
}

inline std::vector<pid_t> worker_pids(mproc::node& node) {
  std::vector<pid_t> pids;
  for (auto& p : node.active_children())
    if (p.pid() > 0)  // not one still starting: kill(0) would hit this whole process group
      pids.push_back(p.pid());
  return pids;
}

} // namespace pool_tasks

using pool_tasks::iota;
using pool_tasks::slow_double;
using pool_tasks::slow_pid;
using pool_tasks::square;
using pool_tasks::squares_of;
using pool_tasks::worker_pids;

MPROC_TASK(square);
MPROC_TASK(slow_pid);
MPROC_TASK(slow_double);
