// A queue shared with a consumer on another node (over TCP on loopback; the other node is a
// child process that listens, standing in for another machine).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

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

// "item N", or "error" and the errc of the failure.
template <class Get>
std::string outcome_of(Get get) {
  try {
    return "item " + std::to_string(get());
  } catch (const mproc::error& e) {
    return "error " + std::to_string(static_cast<int>(e.code()));
  }
}

// On the other node: takes one item of `q` (its agent fetches a batch ahead), says which
// through `told`, then waits on the FIFO `dir/go` until the test writes to it, and writes
// into `dir/result` what a get found once this node saw its link to the root end.
void remote_taker(caf::blocking_actor* self, tasks q, int_queue told, std::string dir) {
  // Watched before the first get makes the queue's agent, which watches it too: CAF tells
  // the newest watcher first, so the agent hears of the queue's end before this actor does.
  self->monitor(q.actor());
  told.put(q.get(10s));
  told.flush(10s);
  std::string line;
  std::ifstream{dir + "/go"} >> line;  // opening a FIFO waits for its writer
  bool seen = false;
  self->receive([&](caf::down_msg&) { seen = true; },
                caf::after(std::chrono::seconds{20}) >> [] {});
  // task_done goes through the agent, after its news of the end: it returns once the agent
  // has handled it.
  try {
    q.task_done();
  } catch (const mproc::error&) {
  }
  {
    std::ofstream out{dir + "/result.part"};
    if (!seen)
      out << "no end seen\n";
    else
      out << outcome_of([&] { return q.get(2s); }) << "\n"
          << outcome_of([&] { return q.get_nowait(); }) << "\n";
  }
  std::filesystem::rename(dir + "/result.part", dir + "/result");
}

// Writes "go" into the FIFO once its reader has it open (open fails with ENXIO until then),
// for up to 10 s: a blocking open would wait for ever for a reader that died.
bool tell_go(const std::string& fifo) {
  for (auto deadline = std::chrono::steady_clock::now() + 10s;
       std::chrono::steady_clock::now() < deadline;) {
    int fd = ::open(fifo.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd >= 0) {
      bool written = ::write(fd, "go\n", 3) == 3;
      ::close(fd);
      return written;
    }
    if (errno != ENXIO)
      return false;
    std::this_thread::sleep_for(10ms);  // polling for the reader to come
  }
  return false;
}

// A directory of its own under /tmp, removed with what it holds however the test ends.
struct temp_dir {
  std::string path;
  temp_dir() {
    char tmpl[] = "/tmp/mproc-queue-XXXXXX";
    REQUIRE(::mkdtemp(tmpl) != nullptr);
    path = tmpl;
  }
  ~temp_dir() { std::filesystem::remove_all(path); }
};

} // namespace

MPROC_ACTOR(remote_taker);

TEST_CASE("a consumer on a node declared down hands out nothing of what the root gave back") {
  std::atomic<bool> down{false};  // set by on_down, which may run until the node's end
  test::scoped_node node;
  auto key = mproc::authkey::generate();
  auto other = test::start_other_node(*node, key, false);
  auto remote = node->connect(other.address(), key);
  remote.on_down([&](const std::string&) { down = true; });
  tasks q{*node};
  int_queue told{*node};
  for (std::int32_t i = 0; i < 100; ++i)
    q.put(i);
  REQUIRE(q.flush(5s));
  temp_dir tmp;
  const std::string& dir = tmp.path;
  REQUIRE(::mkfifo((dir + "/go").c_str(), 0600) == 0);

  remote.spawn("remote_taker", q, told, dir);
  REQUIRE(told.get(10s) == 0);
  REQUIRE(::kill(other.process.pid(), SIGSTOP) == 0);
  REQUIRE(test::eventually(10s, [&] { return down.load(); }));  // silent past the heartbeat
  // The root gave back everything the stopped consumer held: it may never come back.
  CHECK(test::eventually(10s, [&] { return q.stats().unacknowledged == 0; }));
  CHECK(q.stats().size == 100);
  REQUIRE(::kill(other.process.pid(), SIGCONT) == 0);
  REQUIRE(tell_go(dir + "/go"));
  REQUIRE(test::eventually(30s, [&] { return std::filesystem::exists(dir + "/result"); }));
  std::ifstream in{dir + "/result"};
  std::string by_get, by_get_nowait;
  std::getline(in, by_get);
  std::getline(in, by_get_nowait);
  // What it had fetched ahead went back to the queue: handing it out there too would
  // deliver items twice. Both ways of getting say the queue ended.
  auto closed = "error " + std::to_string(static_cast<int>(mproc::errc::closed));
  CHECK(by_get == closed);
  CHECK(by_get_nowait == closed);
  CHECK(q.get(5s) == 0);  // the given back items are the queue's, in their order
  other.process.kill();
  other.process.join(10s);
}
