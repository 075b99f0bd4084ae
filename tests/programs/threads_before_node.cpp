// A program that starts a thread before it creates its node. Its fork server (this program
// again, as far as the node's construction) runs that thread too, so it must refuse to fork
// — a fork copies only the forking thread, with whatever locks the others held — and the
// children start by exec instead. The program must work and end as if nothing happened.
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <mutex>
#include <string>
#include <thread>

#include <caf/event_based_actor.hpp>

#include "mproc/runtime/actor_registry.hpp"
#include "mproc/runtime/node.hpp"

using namespace std::chrono_literals;

caf::behavior doubler(caf::event_based_actor*) {
  return {[](std::int32_t x) { return 2 * x; }};
}
MPROC_ACTOR(doubler);

namespace {

std::mutex m;
std::condition_variable cv;
bool done = false;

bool started_by_exec(pid_t pid) {
  std::ifstream in{"/proc/" + std::to_string(pid) + "/cmdline"};
  std::string cmdline{std::istreambuf_iterator<char>{in}, {}};
  return cmdline.find("--mproc-child") != std::string::npos;
}

} // namespace

int main(int argc, char** argv) {
  std::thread ticker{[] {
    std::unique_lock lock{m};
    cv.wait(lock, [] { return done; });
  }};
  int code = 1;
  {
    mproc::node node{argc, argv, {.start_method = mproc::start_method::forkserver}};
    for (int i = 0; i < 3; ++i) {
      auto p = node.spawn_process("doubler", {});
      auto answer = node.request<std::int32_t>(p.actor(), 10s, std::int32_t{21});
      bool execd = started_by_exec(p.pid());
      std::printf("child %d answered %d, %s\n", i, answer, execd ? "exec'd" : "forked");
      code = answer == 42 && execd ? 0 : 1;
      p.terminate();
      p.join(10s);
      if (code != 0)
        break;
    }
  }
  {
    std::lock_guard guard{m};
    done = true;
  }
  cv.notify_one();
  ticker.join();
  return code;
}
