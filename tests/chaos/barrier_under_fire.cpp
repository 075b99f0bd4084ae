// A Barrier shot at (tests/chaos): in each round three children ("BarrierParty") pass one
// barrier again and again. chaos SIGKILLs parties from outside; a party killed while it
// waits must break the barrier for the others (docs/sync.md: a waiter's death is noticed
// within 50 ms), so that they end with broken_barrier instead of waiting for it. The root
// runs rounds until 20 had a party killed, with a new barrier each time.
//
// A party killed between two waits is not waiting (nor is one whose phase passed because
// the others arrived before its death was noticed): the others then wait for a party that
// will never come, as in Python, and the root aborts the barrier for them. It does so only
// once the dead party is no longer counted among the waiters; a barrier that still counts
// a dead party as waiting 5 s after its death missed the death: the run fails. Ends with
// exit 0 and "barrier ok: ..."; a failure, a hang or a leftover process is a bug.
#include <signal.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <vector>

#include <caf/blocking_actor.hpp>

#include "mproc/actors/barrier.hpp"
#include "mproc/actors/shared_array.hpp"
#include "mproc/runtime/actor_registry.hpp"
#include "mproc/runtime/node.hpp"

using namespace std::chrono_literals;

namespace {
enum slot : std::size_t { passes, broken, slots };
constexpr std::uint32_t parties = 3;
constexpr int killed_rounds_wanted = 20;
constexpr int max_rounds = 200;
} // namespace

void barrier_party(caf::blocking_actor*, mproc::barrier b,
                   mproc::shared_array<std::int64_t> counts) {
  auto count = [&](slot s) { std::atomic_ref<std::int64_t>{counts.raw()[s]}.fetch_add(1); };
  try {
    for (int i = 0; i < 500; ++i) {
      b.wait(60s);
      count(passes);
    }
  } catch (const mproc::error& e) {
    if (e.code() != mproc::errc::broken_barrier)
      throw;
    count(broken);
  }
}
MPROC_ACTOR(barrier_party);

namespace {

using clock_type = std::chrono::steady_clock;

// Waits for the round's parties; true when one of them was killed. Fails the run (false in
// `ok`) when a dead party still counts as waiting long after its death.
bool finish_round(mproc::barrier& b, std::vector<mproc::process>& ps, bool& ok) {
  std::optional<clock_type::time_point> first_death;
  for (;;) {
    bool all_ended = true, killed = false;
    for (auto& p : ps) {
      if (p.is_alive())
        all_ended = false;
      else if (p.exitcode() == -SIGKILL)
        killed = true;
    }
    if (all_ended)
      return killed;
    if (!killed) {
      for (auto& p : ps)
        p.join(50ms);
      continue;
    }
    if (!first_death)
      first_death = clock_type::now();
    std::uint32_t alive = 0;
    for (auto& p : ps)
      alive += p.is_alive() ? 1 : 0;
    if (b.n_waiting() == alive) {
      b.abort();  // it died between two waits, and the others wait for it: nobody will come
    } else if (clock_type::now() - *first_death > 5s) {
      std::printf("barrier failed: %u waiting, %u parties alive, 5 s after a death\n",
                  b.n_waiting(), alive);
      ok = false;
      b.abort();
    }
    for (auto& p : ps)
      p.join(50ms);
  }
}

} // namespace

int main(int argc, char** argv) {
  mproc::node node{argc, argv};
  mproc::shared_array<std::int64_t> counts{slots};
  bool ok = true;
  int rounds = 0, killed_rounds = 0;
  while (ok && killed_rounds < killed_rounds_wanted && rounds < max_rounds) {
    ++rounds;
    mproc::barrier b{parties};
    std::vector<mproc::process> ps;
    for (std::uint32_t i = 0; i < parties; ++i) {
      try {
        ps.push_back(node.spawn_process("barrier_party", {.name = "BarrierParty"}, b, counts));
      } catch (const mproc::error& e) {
        if (e.code() != mproc::errc::process_exited)
          throw;
        b.abort();  // killed while starting: the round cannot complete
      }
    }
    killed_rounds += finish_round(b, ps, ok) ? 1 : 0;
  }
  if (!ok)
    return 1;
  auto c = counts.raw();
  std::printf("barrier ok: %d rounds, %d with a party killed, %lld passes, %lld broken waits\n",
              rounds, killed_rounds, static_cast<long long>(c[passes]),
              static_cast<long long>(c[broken]));
  return 0;
}
