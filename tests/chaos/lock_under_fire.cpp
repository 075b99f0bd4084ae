// Locks shot at (tests/chaos): four children ("LockCounter") add to two shared counters
// under one lock — a, a pause, then b — so that a holder killed in between leaves them
// unequal. Each takes one of two semaphore tokens around it. chaos SIGKILLs children from
// outside; the root starts a new one for each that dies until the counters reach the total.
//
// Every acquirer checks what it found: taken normally, a == b, or the lock let two in
// (counted as a violation); taken with owner_died, it repairs b = a (counted). At the end
// the lock and both tokens must be free again within a few seconds. Ends with exit 0 and
// "lock ok: N increments, R repairs"; a violation, a hang or a leftover process is a bug.
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <thread>
#include <vector>

#include <caf/blocking_actor.hpp>

#include "mproc/actors/lock.hpp"
#include "mproc/actors/semaphore.hpp"
#include "mproc/actors/shared_array.hpp"
#include "mproc/runtime/actor_registry.hpp"
#include "mproc/runtime/node.hpp"

using namespace std::chrono_literals;

namespace {
enum slot : std::size_t { a, b, repairs, violations, stop, slots };
constexpr std::int64_t total = 30'000;
} // namespace

void lock_counter(caf::blocking_actor*, mproc::lock l, mproc::semaphore tokens,
                  mproc::shared_array<std::int64_t> state) {
  auto s = state.raw();
  for (;;) {
    auto token = tokens.hold();
    auto got = l.acquire();
    if (got.owner_died) {
      s[b] = s[a];
      ++s[repairs];
    } else if (s[a] != s[b]) {
      ++s[violations];
    }
    bool done = s[stop] != 0 || s[a] >= total;
    if (!done) {
      ++s[a];
      std::this_thread::sleep_for(50us);  // long enough for kills to land here often
      ++s[b];
    }
    l.release();
    if (done)
      return;
  }
}
MPROC_ACTOR(lock_counter);

int main(int argc, char** argv) {
  mproc::node node{argc, argv};
  mproc::lock l;
  mproc::semaphore tokens{2};
  mproc::shared_array<std::int64_t> state{slots, false};
  std::vector<std::optional<mproc::process>> children(4);
  int started = 0;
  auto progress = [&] {
    auto held = l.hold(30s);
    if (held.owner_died()) {  // the root is an acquirer like the others
      state.raw()[b] = state.raw()[a];
      ++state.raw()[repairs];
    }
    return state.raw()[a];
  };
  while (progress() < total) {
    for (auto& c : children) {
      if (c && !c->join(10ms))
        continue;
      try {
        c = node.spawn_process("lock_counter", {.name = "LockCounter"}, l, tokens, state);
        ++started;
      } catch (const mproc::error& e) {
        if (e.code() != mproc::errc::process_exited)
          throw;  // killed while starting: the next round starts another
        c.reset();
      }
    }
  }
  state.raw()[stop] = 1;
  for (auto& c : children)
    if (c)
      c->join(30s);
  auto s = state.to_vector();
  auto got = l.acquire(true, 5s);
  bool tokens_back = tokens.acquire(true, 5s) && tokens.acquire(true, 5s);
  if (s[violations] != 0 || !got || !tokens_back) {
    std::printf("lock broken: %lld violations, lock %s, tokens %s\n",
                static_cast<long long>(s[violations]), got ? "free" : "held",
                tokens_back ? "back" : "missing");
    return 1;
  }
  std::printf("lock ok: %lld increments, %lld repairs, %d children\n",
              static_cast<long long>(s[a]), static_cast<long long>(s[repairs]), started);
  return 0;
}
