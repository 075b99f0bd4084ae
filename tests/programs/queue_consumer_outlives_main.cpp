// A program as a user writes it: an actor in the root process waits on a queue that nobody
// will ever fill or close, and main returns. The node's end must end that wait (the queue
// ends and answers every call still waiting) instead of waiting for it forever.
#include <cstdio>

#include <caf/blocking_actor.hpp>

#include "mproc/actors/queue.hpp"
#include "mproc/runtime/actor_registry.hpp"
#include "mproc/runtime/node.hpp"

using int_queue = mproc::queue<std::int32_t>;

void waiter(caf::blocking_actor*, int_queue q) {
  try {
    q.get();
    std::printf("waiter: got an item nobody put\n");
  } catch (const mproc::error& e) {
    std::printf("waiter: %s\n", e.what());  // the queue ended
  }
  std::fflush(stdout);
}
MPROC_ACTOR(waiter);

void idle(caf::blocking_actor*, int_queue) {}
MPROC_ACTOR(idle);

int main(int argc, char** argv) {
  mproc::node node{argc, argv};
  int_queue q{node};
  node.spawn_process("idle", {}, q);  // the handle went to a child: the node keeps the queue
  node.spawn("waiter", q);
  return 0;
}
