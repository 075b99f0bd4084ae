// A Barrier shot at (tests/chaos): in each round three children wait on a barrier of four
// parties, which the fourth never reaches: only a death can end the wait. chaos SIGKILLs
// one of them ("BarrierVictim") from outside at a random moment; killed while it waits, it
// must break the barrier for the other two ("BarrierParty", never shot at: docs/sync.md, a
// waiter's death is noticed within 50 ms), so that they end with broken_barrier. The root
// runs rounds until 20 had their victim killed, with a new barrier each time.
//
// A victim killed before it reached the barrier is not waiting: the others then wait for
// parties that will never come, as in Python, and the root aborts the barrier for them. It
// does so only once the dead party is not counted among the waiters; a barrier that still
// counts a dead party as waiting 5 s after its death missed the death: the run fails. Ends
// with exit 0 and "barrier ok: ..."; a failure, a hang or a leftover process is a bug.
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
enum slot : std::size_t { broken, slots };
constexpr std::uint32_t children = 3;
constexpr int killed_rounds_wanted = 20;
constexpr int max_rounds = 100;
using clock_type = std::chrono::steady_clock;
} // namespace

void barrier_party(caf::blocking_actor*, mproc::barrier b,
                   mproc::shared_array<std::int64_t> counts) {
  try {
    b.wait(60s);  // never passes: one party of the four is missing
  } catch (const mproc::error& e) {
    if (e.code() != mproc::errc::broken_barrier)
      throw;
    std::atomic_ref<std::int64_t>{counts.raw()[broken]}.fetch_add(1);
  }
}
MPROC_ACTOR(barrier_party);

namespace {

std::uint32_t alive(std::vector<mproc::process>& ps) {
  std::uint32_t n = 0;
  for (auto& p : ps)
    n += p.is_alive() ? 1 : 0;
  return n;
}

bool killed(std::vector<mproc::process>& ps) {
  for (auto& p : ps)
    if (!p.is_alive() && p.exitcode() == -SIGKILL)
      return true;
  return false;
}

// Waits until the round's parties ended; true when one of them was killed. Clears `ok`
// when a dead party still counts as waiting long after the death. A round nobody is
// killed in (chaos stopped) is aborted after a while.
bool finish_round(mproc::barrier& b, std::vector<mproc::process>& ps, bool& ok) {
  auto started = clock_type::now();
  std::optional<clock_type::time_point> death;
  while (alive(ps) > 0) {
    if (!death && killed(ps))
      death = clock_type::now();
    auto living = alive(ps);
    if (death && b.n_waiting() == living) {
      b.abort();  // the dead party never arrived: nobody else will come
    } else if (death && clock_type::now() - *death > 5s) {
      std::printf("barrier failed: %u waiting, %u parties alive, 5 s after a death\n",
                  b.n_waiting(), living);
      ok = false;
      b.abort();
    } else if (!death && clock_type::now() - started > 20s) {
      b.abort();
    }
    for (auto& p : ps)
      p.join(20ms);
  }
  return killed(ps);
}

} // namespace

int main(int argc, char** argv) {
  mproc::node node{argc, argv};
  mproc::shared_array<std::int64_t> counts{slots};
  bool ok = true;
  int rounds = 0, killed_rounds = 0;
  while (ok && killed_rounds < killed_rounds_wanted && rounds < max_rounds) {
    ++rounds;
    mproc::barrier b{children + 1};
    std::vector<mproc::process> ps;
    bool lost = false;
    for (std::uint32_t i = 0; i < children; ++i) {
      try {
        auto name = i == 0 ? "BarrierVictim" : "BarrierParty";
        ps.push_back(node.spawn_process("barrier_party", {.name = name}, b, counts));
      } catch (const mproc::error& e) {
        if (e.code() != mproc::errc::process_exited)
          throw;
        lost = true;  // killed while starting: it will never arrive
      }
    }
    if (lost)
      b.abort();
    killed_rounds += finish_round(b, ps, ok) ? 1 : 0;
  }
  if (!ok)
    return 1;
  std::printf("barrier ok: %d rounds, %d with the victim killed, %lld waits ended broken\n",
              rounds, killed_rounds, static_cast<long long>(counts.raw()[broken]));
  return 0;
}
