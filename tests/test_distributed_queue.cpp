// A queue shared with a consumer on another node (over TCP on loopback; the other node is a
// child process that listens, standing in for another machine).
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include <caf/blocking_actor.hpp>
#include <caf/system_messages.hpp>

#include <catch2/catch.hpp>

#include "mproc/actors/queue.hpp"
#include "mproc/runtime/actor_registry.hpp"
#include "mproc/runtime/node.hpp"
#include "support.hpp"
#include "tcp_peers.hpp"

using namespace std::chrono_literals;
using int_queue = mproc::queue<std::int32_t>;
using tasks = mproc::joinable_queue<std::int32_t>;

namespace {

std::string outcome_of_get(tasks& q) {
  try {
    return "item " + std::to_string(q.get(2s));
  } catch (const mproc::error& e) {
    return "error " + std::to_string(static_cast<int>(e.code()));
  }
}

// On the other node: takes one item of `q` (its agent fetches a batch ahead), says which
// through `told`, then waits on the FIFO `dir/go` until the test writes to it, and writes
// into `dir/result` what a get found once this node saw its link to the root end.
void remote_taker(caf::blocking_actor* self, tasks q, int_queue told, std::string dir) {
  told.put(q.get(10s));
  told.flush(10s);
  std::string line;
  std::ifstream{dir + "/go"} >> line;  // opening a FIFO waits for its writer
  self->monitor(q.actor());
  bool seen = false;
  self->receive([&](caf::down_msg&) { seen = true; },
                caf::after(std::chrono::seconds{20}) >> [] {});
  // The queue agent heard of that end first (it watched the queue before this actor did);
  // task_done goes through it, so it returns once the agent has handled the end.
  try {
    q.task_done();
  } catch (const mproc::error&) {
  }
  std::ofstream{dir + "/result.part"} << (seen ? outcome_of_get(q) : "no end seen") << "\n";
  std::filesystem::rename(dir + "/result.part", dir + "/result");
}

} // namespace

MPROC_ACTOR(remote_taker);

TEST_CASE("a consumer on a node declared down hands out nothing of what the root gave back") {
  test::scoped_node node;
  auto key = mproc::authkey::generate();
  auto other = test::start_other_node(*node, key, false);
  auto remote = node->connect(other.address(), key);
  std::atomic<bool> down{false};
  remote.on_down([&](const std::string&) { down = true; });
  tasks q{*node};
  int_queue told{*node};
  for (std::int32_t i = 0; i < 100; ++i)
    q.put(i);
  REQUIRE(q.flush(5s));
  char tmpl[] = "/tmp/mproc-queue-XXXXXX";
  REQUIRE(::mkdtemp(tmpl) != nullptr);
  std::string dir = tmpl;
  REQUIRE(::mkfifo((dir + "/go").c_str(), 0600) == 0);

  remote.spawn("remote_taker", q, told, dir);
  CHECK(told.get(10s) == 0);
  REQUIRE(::kill(other.process.pid(), SIGSTOP) == 0);
  REQUIRE(test::eventually(10s, [&] { return down.load(); }));  // silent past the heartbeat
  // The root gave back everything the stopped consumer held: it may never come back.
  CHECK(test::eventually(10s, [&] { return q.stats().unacknowledged == 0; }));
  CHECK(q.stats().size == 100);
  REQUIRE(::kill(other.process.pid(), SIGCONT) == 0);
  std::ofstream{dir + "/go"} << "go\n";
  REQUIRE(test::eventually(20s, [&] { return std::filesystem::exists(dir + "/result"); }));
  std::ifstream in{dir + "/result"};
  std::string outcome;
  std::getline(in, outcome);
  // What it had fetched ahead went back to the queue: handing it out there too would
  // deliver items twice.
  CHECK(outcome.rfind("error ", 0) == 0);
  INFO(outcome);
  CHECK(q.get(5s) == 0);  // the given back items are the queue's, in their order
  other.process.kill();
  other.process.join(10s);
  std::filesystem::remove_all(dir);
}
