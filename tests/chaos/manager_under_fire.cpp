// A Manager shot at (tests/chaos): four children ("ManagerUser") add one at a time to a
// registered counter in the manager and append to a shared list every 100th time. chaos
// SIGKILLs children, or the manager's process ("SyncManager"), from outside.
//
// The root starts a new child for each that dies. A killed manager fails every call at once
// (process_exited, or link_lost when a write found the link broken before the exit was
// seen): the root then starts a new manager and begins the round again, as a
// Python program restarting its Manager would; its children see the same error and end.
// The manager must never answer wrongly: at the end of a round the counter holds the total
// plus at most one add per user that was running or started as it crossed, and the list at
// most one entry per hundred adds, missing at most one per killed user. Ends with exit 0 and
// "manager ok: N rounds, M managers, C children"; a hang, a wrong count or a leftover
// process is a bug.
//   manager_under_fire [--total N] [--rounds R]
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include <caf/blocking_actor.hpp>

#include "mproc/actors/manager.hpp"
#include "mproc/runtime/actor_registry.hpp"
#include "mproc/runtime/node.hpp"

using namespace std::chrono_literals;

struct counter {
  std::int64_t n = 0;
  std::int64_t add() { return ++n; }
  std::int64_t get() const { return n; }
};
MPROC_MANAGED(counter, add);
MPROC_MANAGED(counter, get);

void manager_user(caf::blocking_actor*, mproc::object_proxy<counter> c,
                  mproc::list_proxy<std::int64_t> hundreds, std::int64_t total) {
  try {
    for (;;) {
      auto n = c.call<&counter::add>();
      if (n % 100 == 0)
        hundreds.append(n);
      if (n >= total)
        return;
    }
  } catch (const mproc::error&) {
    // the manager is gone: the root starts another
  }
}
MPROC_ACTOR(manager_user);

namespace {

struct outcome {
  bool finished = false;  // false: the manager died first
  std::int64_t adds = 0;
  std::size_t hundreds = 0;
};

// One manager's life: users started (and restarted) until the counter reaches the total.
outcome run_manager(mproc::node& node, std::int64_t total, int& started) {
  std::vector<std::optional<mproc::process>> users(4);
  outcome out;
  try {
    mproc::manager m{node};
    auto c = m.object<counter>("count");
    auto hundreds = m.list<std::int64_t>("hundreds");
    while (c.call<&counter::get>() < total) {
      for (auto& u : users) {
        if (u && !u->join(10ms))
          continue;
        try {
          u = node.spawn_process("manager_user", {.name = "ManagerUser"}, c, hundreds, total);
          ++started;
        } catch (const mproc::error& e) {
          if (e.code() != mproc::errc::process_exited)
            throw;  // killed while starting: the next round starts another
          u.reset();
        }
      }
    }
    for (auto& u : users)
      if (u)
        u->join(30s);
    out = {true, c.call<&counter::get>(), hundreds.size()};
  } catch (const mproc::error& e) {
    auto code = e.code();  // the manager died: its link broke, or its exit was seen first
    if (code != mproc::errc::process_exited && code != mproc::errc::link_lost
        && code != mproc::errc::spawn_failed)
      throw;
    for (auto& u : users)  // they end on their own once their calls fail
      if (u)
        u->join(30s);
  }
  return out;
}

} // namespace

int main(int argc, char** argv) {
  mproc::node node{argc, argv};
  std::int64_t total = 20'000;
  int rounds = 1;
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::strcmp(argv[i], "--total") == 0)
      total = std::stoll(argv[i + 1]);
    if (std::strcmp(argv[i], "--rounds") == 0)
      rounds = std::stoi(argv[i + 1]);
  }
  int managers = 0, started = 0;
  for (int done = 0; done < rounds;) {
    ++managers;
    int before = started;
    auto out = run_manager(node, total, started);
    if (!out.finished)
      continue;
    ++done;
    auto users = started - before;
    bool ok = out.adds >= total && out.adds < total + 8
              && static_cast<std::int64_t>(out.hundreds) <= out.adds / 100
              && static_cast<std::int64_t>(out.hundreds) >= out.adds / 100 - users;
    if (!ok) {
      std::printf("manager broken: %lld adds, %zu hundreds, %d children\n",
                  static_cast<long long>(out.adds), out.hundreds, users);
      return 1;
    }
  }
  std::printf("manager ok: %d rounds, %d managers, %d children\n", rounds, managers, started);
  return 0;
}
