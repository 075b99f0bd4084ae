// The seeds' Pipe program (issue 11, case 2), as the tutorial writes it: the child sends,
// the parent receives and answers, and main returns without join. The child must get the
// answer and the program must end.
#include <cstdio>
#include <string>

#include <caf/blocking_actor.hpp>

#include "mproc/actors/pipe.hpp"
#include "mproc/runtime/actor_registry.hpp"
#include "mproc/runtime/node.hpp"

void foo(caf::blocking_actor*, mproc::connection conn) {
  conn.send(std::string{"hi father"});
  auto answer = conn.recv_as<std::string>();
  std::printf("child got: %s\n", answer.c_str());
  if (answer != "hi son")
    throw std::runtime_error("wrong answer");
}
MPROC_ACTOR(foo);

int main(int argc, char** argv) {
  mproc::node node{argc, argv};
  auto [conn1, conn2] = mproc::pipe(node);
  auto p = node.spawn_process("foo", {}, conn1);
  std::printf("parent got: %s\n", conn2.recv_as<std::string>().c_str());
  conn2.send(std::string{"hi son"});
  return 0;
}
