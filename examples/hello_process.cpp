// The seeds' first program in mproc: the parent prints its pid, starts a child process
// hosting an actor, asks the actor who it is, prints the answer, and joins the child.
//
//   Python:  p = Process(target=run_proc, args=('test',)); p.start(); p.join()
#include <unistd.h>

#include <cstdio>
#include <string>

#include <caf/event_based_actor.hpp>

#include <mproc/runtime/actor_registry.hpp>
#include <mproc/runtime/node.hpp>

using namespace std::chrono_literals;

// Answers one question, then quits; the child process ends with it (exit code 0).
caf::behavior greeter(caf::event_based_actor* self, std::string greeting) {
  return {
    [=](const std::string& who) {
      self->quit();
      return greeting + ", " + who + "! I am " + mproc::current_process_name() + ", pid "
             + std::to_string(::getpid()) + ", parent pid " + std::to_string(mproc::parent_pid());
    },
  };
}
MPROC_ACTOR(greeter);

int main(int argc, char** argv) {
  mproc::node node{argc, argv};  // first: in the child this line runs the actor, then exits

  std::printf("parent process %d\n", ::getpid());
  auto child = node.spawn_process("greeter", {.name = "greeter-1"}, std::string{"hello"});
  std::printf("child process %s started, pid %d\n", child.name().c_str(), child.pid());

  auto reply = node.request<std::string>(child.actor(), 5s, std::string{"parent"});
  std::printf("reply: %s\n", reply.c_str());

  child.join(5s);
  std::printf("child exit code: %d\n", child.exitcode().value_or(-1000));
  return child.exitcode() == 0 ? 0 : 1;
}
