// A supervision tree across processes:
//
//   root (this process, one_for_one, at most 3 restarts in 5 s)
//   ├─ steady   worker process
//   ├─ flaky    worker process: fails now and then (an error exit, or abort())
//   └─ team     supervisor process (one_for_one, at most 2 restarts in 2 s)
//      ├─ calm   worker process
//      └─ jumpy  worker process: fails often
//
// Each restart is logged by the supervisor that does it. jumpy fails too often for team,
// which gives up; root restarts team, and soon root itself exceeds its limit and gives up:
// the escalation ends the program, with no process left behind.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <iostream>
#include <optional>
#include <vector>
#include <random>

#include <caf/event_based_actor.hpp>

#include <mproc/runtime/actor_registry.hpp>
#include <mproc/runtime/node.hpp>
#include <mproc/runtime/supervisor.hpp>

using namespace std::chrono_literals;
using fail_atom = caf::atom_constant<caf::atom("fail")>;

namespace {

// Works quietly; if `fail_after_ms` > 0, fails after a random time up to that long.
caf::behavior worker(caf::event_based_actor* self, std::int32_t fail_after_ms) {
  if (fail_after_ms > 0) {
    std::minstd_rand rng{static_cast<unsigned>(::getpid())};
    auto after = std::chrono::milliseconds{fail_after_ms / 2 + rng() % (fail_after_ms / 2 + 1)};
    self->delayed_send(self, after, fail_atom::value, static_cast<std::int32_t>(rng() % 2));
  }
  return {
    [](caf::get_atom) { return static_cast<std::int32_t>(::getpid()); },
    [=](fail_atom, std::int32_t abort) {
      if (abort != 0)
        std::abort();  // killed by SIGABRT
      self->quit(caf::exit_reason::user_shutdown);  // an error: the process exits with 1
    },
  };
}

caf::behavior team(caf::event_based_actor* self) {
  return mproc::supervise(
    self, {.intensity = 2, .period = 2s, .name = "team"},
    {{.id = "calm", .actor = "worker", .args = caf::make_message(std::int32_t{0})},
     {.id = "jumpy", .actor = "worker", .args = caf::make_message(std::int32_t{400})}});
}

} // namespace

MPROC_ACTOR(worker);
MPROC_ACTOR(team);

int main(int argc, char** argv) {
  mproc::node node{argc, argv};
  auto started = std::chrono::steady_clock::now();
  // A child killed before it answered fails the start, as OTP's start_link does: say so.
  std::optional<mproc::supervisor> started_root;
  try {
    started_root.emplace(
      node, mproc::supervisor_flags{.intensity = 3, .period = 5s, .name = "root"},
      std::vector<mproc::child_spec>{
        {.id = "steady", .actor = "worker", .args = caf::make_message(std::int32_t{0})},
        {.id = "flaky", .actor = "worker", .args = caf::make_message(std::int32_t{1500})},
        {.id = "team", .actor = "team", .type = mproc::child_type::supervisor}});
  } catch (const mproc::error& e) {
    std::cout << "the tree could not start: " << e.what() << "\n";
    return 2;
  }
  auto& root = *started_root;

  std::cout << "the tree at start:\n";
  mproc::print_tree(std::cout, root.tree());
  std::cout.flush();

  int ticks = 0;
  while (!root.wait(1s)) {
    if (++ticks > 30) {  // escalation is meant to happen well before this
      std::cout << "no escalation within 30 s: stopping\n";
      root.stop();
      return 1;
    }
    try {
      std::cout << "\nthe tree after " << ticks << " s:\n";
      mproc::print_tree(std::cout, root.tree());
    } catch (const mproc::error& e) {
      std::cout << "(root ended meanwhile: " << e.what() << ")\n";
    }
    std::cout.flush();
  }

  auto secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  std::cout << "\nroot ended after " << secs << " s: " << node.system().render(root.reason())
            << "\n";
  bool gave_up = mproc::code_of(root.reason()) == mproc::errc::gave_up;
  bool nothing_left = node.active_children().empty();
  std::cout << (nothing_left ? "no child process is left\n" : "child processes are left!\n");
  return gave_up && nothing_left ? 0 : 1;
}
