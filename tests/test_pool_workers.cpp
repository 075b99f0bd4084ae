// A pool's workers: recycled after maxtasksperchild, prepared by an initializer, and ended
// by close/join, terminate or the pool's destructor, even when they ignore SIGTERM.
#include "mproc/actors/pool.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <limits>
#include <map>
#include <stdexcept>
#include <string>
#include <thread>

#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/send.hpp>

#include <catch2/catch.hpp>

#include "mproc/actors/pool_chunks.hpp"
#include "mproc/actors/pool_dispatcher.hpp"
#include "mproc/actors/pool_job.hpp"
#include "mproc/actors/pool_protocol.hpp"
#include "mproc/runtime/inspect.hpp"
#include "mproc/serialization/value.hpp"
#include "mproc/runtime/node.hpp"
#include "pool_tasks.hpp"
#include "support.hpp"

using namespace std::chrono_literals;
using mproc::errc;
using test::code_of;

namespace {

std::int32_t pid_of(std::int32_t) {
  return ::getpid();
}

std::string greeting;  // set by the initializer, in each worker

void set_greeting(std::string text) {
  greeting = text;
}

void failing_init() {
  throw std::runtime_error("no config");
}

std::string read_greeting(std::int32_t) {
  return greeting;
}

// The idle workers' requests for work that this process's pool holds, as `mproc ps` shows.
std::int64_t idle_pulls() {
  using mproc::value;
  auto snap = mproc::inspect_node(::getpid());
  const value* objects = snap.find("objects");
  if (objects == nullptr || objects->type() != value::kind::array)
    return -1;
  for (const auto& o : std::get<value::array_t>(objects->raw())) {
    const value* kind = o.find("kind");
    const value* pulls = o.find("idle_pulls");
    if (kind && kind->type() == value::kind::string && kind->as<std::string>() == "pool" && pulls
        && pulls->type() == value::kind::integer)
      return pulls->as<std::int64_t>();
  }
  return -1;
}

std::int32_t deaf_sleeper(std::int32_t ms) {
  ::signal(SIGTERM, SIG_IGN);
  std::this_thread::sleep_for(std::chrono::milliseconds{ms});
  return 0;
}

// The first worker's initializer takes `path` (created here); every later one finds it
// taken, appends a byte to it and fails, as a worker whose resource is held.
void first_only(std::string path) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd >= 0) {
    ::close(fd);
    return;
  }
  fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
  if (fd >= 0) {
    [[maybe_unused]] auto n = ::write(fd, "x", 1);
    ::close(fd);
  }
  throw std::runtime_error("the resource is held");
}

// Runs until `deaths` later workers failed their initializer (30 s at most); true if so.
bool outlives_failed_starts(std::string path, std::int32_t deaths) {
  return test::eventually(30s, [&] {
    struct stat st{};
    return ::stat(path.c_str(), &st) == 0 && st.st_size >= deaths;
  });
}

} // namespace

MPROC_TASK(first_only);
MPROC_TASK(outlives_failed_starts);
MPROC_TASK(pid_of);
MPROC_TASK(set_greeting);
MPROC_TASK(failing_init);
MPROC_TASK(read_greeting);
MPROC_TASK(deaf_sleeper);

TEST_CASE("maxtasksperchild recycles workers without losing work") {
  test::scoped_node node;
  mproc::pool pool{*node, {.processes = 2, .maxtasksperchild = 2}};
  auto pids = pool.map(pid_of, std::vector<std::int32_t>(20, 0), 1);
  REQUIRE(pids.size() == 20);
  std::map<std::int32_t, int> tasks_per_pid;
  for (auto pid : pids)
    ++tasks_per_pid[pid];
  CHECK(tasks_per_pid.size() >= 10);
  for (auto [pid, n] : tasks_per_pid)
    CHECK(n <= 2);
  CHECK(pool.map(square, iota(100), 3) == squares_of(iota(100)));
}

TEST_CASE("an initializer runs in every worker before its first task") {
  test::scoped_node node;
  mproc::pool pool{*node, {.processes = 2,
                           .initializer = mproc::bind_task(set_greeting, std::string{"hi"})}};
  for (const auto& g : pool.map(read_greeting, std::vector<std::int32_t>(10, 0), 1))
    CHECK(g == "hi");
}

TEST_CASE("an initializer that always fails makes calls fail instead of hang") {
  test::scoped_node node;
  mproc::pool pool{*node, {.processes = 2, .initializer = mproc::bind_task(failing_init)}};
  auto r = pool.apply_async(square, std::int64_t{2});
  std::string what;
  try {
    r.get(60s);
  } catch (const mproc::error& e) {
    what = e.what();
  }
  CHECK_THAT(what, Catch::Contains("keep dying"));
  // The last death named (it was blank: such workers never counted among the pool's).
  CHECK_THAT(what, Catch::Contains("before asking for work: process exited with code 1"));
}

TEST_CASE("workers that fail to start do not fail a task a started worker is running") {
  test::scoped_node node;
  auto path = "/tmp/mproc-first-only-" + std::to_string(::getpid());
  ::unlink(path.c_str());
  {
    mproc::pool pool{*node, {.processes = 2, .initializer = mproc::bind_task(first_only, path)}};
    // More failed starts than "workers keep dying" allows (3 x processes) while the one
    // worker that started runs the task: the pool still has a worker making progress.
    CHECK(pool.apply(outlives_failed_starts, path, std::int32_t{8}));
  }
  ::unlink(path.c_str());
}

TEST_CASE("idle workers killed from outside again and again do not fail a long task") {
  test::scoped_node node;
  mproc::pool pool{*node, {.processes = 2}};
  auto busy = pool.apply_async(slow_pid, 5000);
  pid_t idle = pool.apply(pid_of, 0);  // the busy worker cannot take it
  pid_t working = 0;
  REQUIRE(test::eventually(10s, [&] {
    auto pids = worker_pids(*node);
    working = pids.size() == 2 ? (pids[0] == idle ? pids[1] : pids[0]) : 0;
    return working != 0;
  }));
  // More deaths than "workers keep dying" allows (3 x processes), with no chunk finishing
  // in between: each victim had started and asked for work, and held none.
  for (int i = 0; i < 8; ++i) {
    REQUIRE(::kill(idle, SIGKILL) == 0);
    REQUIRE(test::eventually(20s, [&] {  // its replacement runs and asks for work
      auto pids = worker_pids(*node);
      if (pids.size() != 2 || std::count(pids.begin(), pids.end(), idle) != 0
          || idle_pulls() < 1)  // 2 once the long task ended (then nothing is tested)
        return false;
      idle = pids[0] == working ? pids[1] : pids[0];
      return true;
    }));
  }
  CHECK(busy.get(60s) > 0);
}
TEST_CASE("close lets submitted work finish; join then returns and new work is refused") {
  test::scoped_node node;
  mproc::pool pool{*node, {.processes = 2}};
  auto r = pool.map_async(slow_double, iota(20), 1);
  pool.close();
  REQUIRE(pool.join(30s));
  auto doubles = r.get(1s);
  REQUIRE(doubles.size() == 20);
  CHECK(doubles[19] == 38);
  CHECK(code_of([&] { pool.apply(square, std::int64_t{1}); }) == errc::closed);
  CHECK(node->active_children().empty());
  CHECK(test::zombie_children() == 0);
}

TEST_CASE("join on a running pool is refused rather than waiting forever") {
  test::scoped_node node;
  mproc::pool pool{*node, {.processes = 1}};
  CHECK_THROWS_AS(pool.join(1s), std::logic_error);
}

TEST_CASE("terminate fails the calls in flight at once and ends every worker") {
  test::scoped_node node;
  mproc::pool pool{*node, {.processes = 2}};
  auto r = pool.map_async(slow_pid, std::vector<std::int32_t>(10, 5000), 1);
  REQUIRE(test::eventually(10s, [&] { return worker_pids(*node).size() == 2; }));
  auto pids = worker_pids(*node);
  auto started = std::chrono::steady_clock::now();
  pool.terminate();
  CHECK(code_of([&] { r.get(5s); }) == errc::closed);
  CHECK(std::chrono::steady_clock::now() - started < 4s);
  REQUIRE(pool.join(10s));
  for (auto pid : pids)
    CHECK_FALSE(test::running(pid));
  CHECK(test::zombie_children() == 0);
}

TEST_CASE("destroying a pool terminates its workers (RAII)") {
  test::scoped_node node;
  std::vector<pid_t> pids;
  {
    mproc::pool pool{*node, {.processes = 2}};
    pool.map_async(slow_pid, std::vector<std::int32_t>(4, 5000), 1);
    REQUIRE(test::eventually(10s, [&] { return worker_pids(*node).size() == 2; }));
    pids = worker_pids(*node);
  }
  for (auto pid : pids)
    CHECK_FALSE(test::running(pid));
  CHECK(node->active_children().empty());
  CHECK(test::zombie_children() == 0);
}
TEST_CASE("terminate kills workers that ignore SIGTERM") {
  test::scoped_node node;
  mproc::pool pool{*node, {.processes = 1}};
  auto r = pool.apply_async(deaf_sleeper, 60'000);
  REQUIRE(test::eventually(10s, [&] { return worker_pids(*node).size() == 1; }));
  auto pid = worker_pids(*node).front();
  std::this_thread::sleep_for(200ms);  // the task has ignored SIGTERM by now
  pool.terminate();
  CHECK(pool.join(5s));
  CHECK_FALSE(test::running(pid));
  CHECK(code_of([&] { r.get(1s); }) == errc::closed);
}

TEST_CASE("a dispatcher that ends fails its jobs and those handed in after; join returns") {
  // However it ends (here a kill; an exception in a handler does the same), no caller
  // waits for ever on a job it had, on one still waiting to be taken, or in join().
  using namespace mproc::detail;
  test::scoped_node node;
  auto status = std::make_shared<pool_status>();
  auto d = node->system().spawn(pool_dispatcher, mproc::pool_options{.processes = 1}, status);
  auto job_of = [](std::size_t n) {
    auto job = std::make_shared<pool_job>(n);
    job->task = "slow_double";  // 20 ms an item: 4 s of work on one worker
    job->set_source(chunks_of<std::int64_t>(
      job->task, false, std::make_shared<const std::vector<std::int64_t>>(n, 7), 1));
    return job;
  };
  auto taken = job_of(200);
  REQUIRE(status->hand_in(taken));
  caf::anon_send(d, pool_control{pool_control::submit});
  REQUIRE(test::eventually(10s, [&] {
    std::lock_guard guard{status->m};
    return status->handed_in.empty();  // taken: the next is handed in without a nudge
  }));
  auto waiting = job_of(1);
  REQUIRE(status->hand_in(waiting));  // not yet taken: what the dispatcher never sees
  caf::anon_send_exit(d, caf::exit_reason::kill);
  auto failed = [](pool_job& job) {
    std::unique_lock lock{job.m};
    return job.cv.wait_for(lock, 10s, [&] { return static_cast<bool>(job.failure); });
  };
  REQUIRE(failed(*taken));
  CHECK(mproc::code_of(taken->failure) == errc::closed);
  REQUIRE(failed(*waiting));
  CHECK(mproc::code_of(waiting->failure) == errc::closed);
  {
    std::unique_lock lock{status->m};
    CHECK(status->cv.wait_for(lock, 10s, [&] { return status->over; }));
  }
  CHECK_FALSE(status->hand_in(job_of(1)));  // a later call fails at once
  CHECK(test::eventually(10s, [&] { return node->active_children().empty(); }));  // its worker ended
}

TEST_CASE("messages of other actors do not close, terminate, grow or rob a pool") {
  // What the dispatcher's own callbacks and the pool's handle used to send as atoms: any
  // actor holding its handle (a worker, a peer) could end the pool or fork workers with them,
  // or take chunks with an anonymous pull.
  using namespace mproc::detail;
  test::scoped_node node;
  auto status = std::make_shared<pool_status>();
  auto d = node->system().spawn(pool_dispatcher, mproc::pool_options{.processes = 1}, status);
  caf::anon_send(d, caf::atom("pool_term"));
  caf::anon_send(d, caf::atom("pool_kill"));
  caf::anon_send(d, caf::atom("pool_close"));
  for (int i = 0; i < 5; ++i)
    caf::anon_send(d, caf::atom("pool_resp"));
  caf::anon_send(d, caf::atom("pool_exit"), std::size_t{1}, 0);
  // A pull without a sender, first in line: what it took would be held for ever.
  caf::anon_send(d, pool_pull_atom::value, item_batch{}, std::uint32_t{4096},
                 std::numeric_limits<std::uint32_t>::max(), std::uint64_t{0});
  caf::scoped_actor stranger{node->system()};  // a frame limit no node has: every chunk failed
  stranger->send(d, pool_pull_atom::value, item_batch{}, std::uint32_t{4096}, std::uint32_t{0},
                 std::uint64_t{0});
  auto job = std::make_shared<pool_job>(4);
  job->task = "square";
  job->set_source(chunks_of<std::int64_t>(
    job->task, false, std::make_shared<const std::vector<std::int64_t>>(4, 3), 1));
  REQUIRE(status->hand_in(job));
  caf::anon_send(d, pool_control{pool_control::submit});
  {
    std::unique_lock lock{job->m};
    REQUIRE(job->cv.wait_for(lock, 10s, [&] { return job->complete_locked(); }));
    CHECK_FALSE(job->failure);  // not terminated
    CHECK(job->done == 4);
    for (std::size_t i = 0; i < 4; ++i) {  // each ran (none failed as too large for a forger)
      auto chunk = job->settled_locked(i);
      REQUIRE(chunk);
      CHECK(chunk->failure == nullptr);
    }
  }
  CHECK(node->active_children().size() == 1);  // one worker: none forked for the forgeries
  caf::anon_send(d, pool_control{pool_control::close});
  std::unique_lock lock{status->m};
  CHECK(status->cv.wait_for(lock, 10s, [&] { return status->over; }));  // closed by the handle
}

TEST_CASE("a dispatcher that ends takes its idle workers along") {
  // A worker waiting for work waits on its pull without a timeout: the end must answer it.
  using namespace mproc::detail;
  test::scoped_node node;
  auto status = std::make_shared<pool_status>();
  auto d = node->system().spawn(pool_dispatcher, mproc::pool_options{.processes = 1}, status);
  REQUIRE(test::eventually(10s, [&] {
    auto state = node->request<mproc::value>(d, 5s, pool_inspect_atom::value);
    const auto* idle = state.find("idle_pulls");
    return idle != nullptr && idle->as<std::int64_t>() == 1;  // its worker asked for work
  }));
  caf::anon_send_exit(d, caf::exit_reason::kill);
  CHECK(test::eventually(10s, [&] { return node->active_children().empty(); }));
}
