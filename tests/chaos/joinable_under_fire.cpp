// A JoinableQueue shot at (tests/chaos): the root puts numbered tasks into a joinable queue;
// three worker children take them one at a time, report each number on a second queue
// (waiting until that queue accepted it) and call task_done(). Chaos kills workers from
// outside; the root starts a new worker for each one that ended, and join() must return
// once every task was done: a task whose worker died before its task_done() goes back to
// the queue (docs/queue.md, points 4 and 5). Ends with exit 0 and
// "joinable ok: N tasks, N done, K workers"; join() never returning, a task reported done
// that no worker finished, or a process left behind is a bug.
//
//   joinable_under_fire [--total N]
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <set>
#include <vector>

#include <caf/blocking_actor.hpp>

#include "mproc/actors/queue.hpp"
#include "mproc/runtime/actor_registry.hpp"
#include "mproc/runtime/node.hpp"

using namespace std::chrono_literals;

using task_queue = mproc::joinable_queue<std::int64_t>;
using done_queue = mproc::queue<std::int64_t>;

void joinable_worker(caf::blocking_actor*, task_queue tasks, done_queue done) {
  try {
    for (;;) {
      auto n = tasks.get();
      done.put(n);
      // Done means reported: killed before this returns, the task comes back and is done
      // again (a duplicate, which the root counts once); never done without its report.
      if (!done.flush(30s)) {
        std::fprintf(stderr, "joinable_worker: the done queue accepted nothing for 30 s\n");
        std::abort();
      }
      tasks.task_done();
    }
  } catch (const mproc::error& e) {
    if (e.code() == mproc::errc::closed)
      return;  // every task was done and the root closed the queue
    // Anything else (a task_done refused as one too many: an item counted done twice) is
    // the failure this test looks for: an abort, which the root tells from its own kills.
    std::fprintf(stderr, "joinable_worker: %s\n", e.what());
    std::abort();
  }
}
MPROC_ACTOR(joinable_worker);

namespace {

std::optional<mproc::process> start_worker(mproc::node& node, task_queue& tasks,
                                           done_queue& done) {
  try {
    return node.spawn_process("joinable_worker", {.name = "JoinableWorker"}, tasks, done);
  } catch (const mproc::error& e) {
    if (e.code() != mproc::errc::process_exited)
      throw;
    return std::nullopt;  // killed while starting: the next round starts another
  }
}

// What the workers reported, waiting up to `wait` for the first one.
void collect(done_queue& done, std::set<std::int64_t>& seen, std::chrono::milliseconds wait) {
  try {
    for (auto n : done.get_many(4096, wait))
      seen.insert(n);
  } catch (const mproc::error& e) {
    if (e.code() != mproc::errc::empty)
      throw;
  }
}

std::int64_t total_from(int argc, char** argv) {
  for (int i = 1; i + 1 < argc; ++i)
    if (std::strcmp(argv[i], "--total") == 0)
      return std::atoll(argv[i + 1]);
  return 5'000;
}

} // namespace

int main(int argc, char** argv) {
  mproc::node node{argc, argv};
  auto total = total_from(argc, argv);
  task_queue tasks{node};
  done_queue done{node};
  for (std::int64_t i = 0; i < total; ++i)
    tasks.put(i);

  constexpr int worker_count = 3;
  std::vector<std::optional<mproc::process>> workers(worker_count);
  int started = 0;
  std::set<std::int64_t> seen;
  while (!tasks.join(50ms)) {
    for (auto& w : workers) {
      if (w && w->is_alive())
        continue;
      if (w) {
        w->join();
        if (w->exitcode() == -SIGABRT) {
          std::printf("joinable failed: a worker aborted (see its message above)\n");
          return 1;
        }
      }
      w = start_worker(node, tasks, done);
      started += w ? 1 : 0;
    }
    collect(done, seen, 0ms);
  }

  // join() returned: no item is left or out with a worker (each was acknowledged by the
  // task_done that finished it). One still out means join() came early.
  auto left = tasks.stats();
  if (left.size != 0 || left.unacknowledged != 0) {
    std::printf("joinable failed: join() returned with %llu items queued and %llu out\n",
                static_cast<unsigned long long>(left.size),
                static_cast<unsigned long long>(left.unacknowledged));
    return 1;
  }
  // Every task was done, so every number was reported (put and flushed) before its
  // task_done(): all of them are in the done queue already, and taken until it is empty,
  // without waiting (a wait would give a worker still busy with a task that join() wrongly
  // counted done the time to report it).
  try {
    for (;;)
      seen.insert(done.get_nowait());
  } catch (const mproc::error& e) {
    if (e.code() != mproc::errc::empty)
      throw;
  }
  tasks.close();
  for (auto& w : workers) {
    if (w && !w->join(10s)) {
      std::printf("joinable failed: a worker did not end after close()\n");
      return 1;
    }
    if (w && w->exitcode() == -SIGABRT) {
      std::printf("joinable failed: a worker aborted (see its message above)\n");
      return 1;
    }
  }
  if (seen.size() != static_cast<std::size_t>(total)) {
    std::printf("joinable failed: join() returned with %zu of %lld tasks reported done\n",
                seen.size(), static_cast<long long>(total));
    return 1;
  }
  std::printf("joinable ok: %lld tasks, %zu done, %d workers\n", static_cast<long long>(total),
              seen.size(), started);
  return 0;
}
