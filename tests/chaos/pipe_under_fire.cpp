// Pipes shot at (tests/chaos): the root sends 20,000 numbered messages, one at a time, to
// an echoing child through a pipe, and checks each answer. When chaos kills the child, the
// root's end must see EOF (never hang), and the root starts a new child with a new pipe and
// goes on from the message that was not answered. Ends with exit 0 and
// "pipe ok after N children"; a wrong answer, a hang or a leftover process is a bug.
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <optional>

#include <caf/blocking_actor.hpp>

#include "mproc/actors/pipe.hpp"
#include "mproc/runtime/actor_registry.hpp"
#include "mproc/runtime/node.hpp"

using namespace std::chrono_literals;

void pipe_echo(caf::blocking_actor*, mproc::connection c) {
  try {
    for (;;)
      c.send(c.recv_as<std::int64_t>() * 3);
  } catch (const mproc::error&) {
    // EOF: the root is done with this pipe
  }
}
MPROC_ACTOR(pipe_echo);

int main(int argc, char** argv) {
  mproc::node node{argc, argv};
  constexpr std::int64_t total = 20'000;
  std::int64_t next = 0;
  int children = 0;
  while (next < total) {
    auto [here, there] = mproc::pipe(node);
    std::optional<mproc::process> started;
    try {
      started = node.spawn_process("pipe_echo", {.name = "PipeEcho"}, there);
    } catch (const mproc::error& e) {
      if (e.code() != mproc::errc::process_exited)
        throw;
      continue;  // killed while starting: a new pipe, a new child
    }
    auto& p = *started;
    ++children;
    try {
      for (; next < total; ++next) {
        here.send(next);
        auto got = here.recv_as<std::int64_t>();
        if (got != next * 3) {
          std::printf("pipe wrong: %lld for %lld\n", static_cast<long long>(got),
                      static_cast<long long>(next));
          return 1;
        }
      }
    } catch (const mproc::error& e) {
      if (e.code() != mproc::errc::closed) {
        std::printf("pipe failed: %s\n", e.what());
        return 1;
      }
    }
    here.close();
    p.join(10s);
  }
  std::printf("pipe ok after %d children\n", children);
  return 0;
}
