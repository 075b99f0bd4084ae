// A program as a user writes it (issue 11, case 2): the queue lives in an inner scope of
// main, a child uses it after the scope is gone, and main returns without joining. The
// queue must live as long as a process uses it, and the program must end.
#include <cstdio>
#include <thread>

#include <caf/blocking_actor.hpp>

#include "mproc/actors/queue.hpp"
#include "mproc/runtime/actor_registry.hpp"
#include "mproc/runtime/node.hpp"

using int_queue = mproc::queue<std::int32_t>;

void user(caf::blocking_actor*, int_queue q, std::int32_t sleep_ms) {
  std::this_thread::sleep_for(std::chrono::milliseconds{sleep_ms});
  if (q.get() != 1)
    throw std::runtime_error("wrong item");
}
MPROC_ACTOR(user);

int main(int argc, char** argv) {
  mproc::node node{argc, argv};
  {
    int_queue q{node};
    q.put(1);
    node.spawn_process("user", {}, q, std::int32_t{300});
  }
  std::printf("main returns\n");
  return 0;
}
