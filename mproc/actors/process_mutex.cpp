#include "mproc/actors/process_mutex.hpp"

#include <utility>

namespace mproc::detail {

namespace {

// Called when `holder` has held the word for a death_check_period (or on a try): takes it
// over if that process ended.
bool take_from_dead(process_mutex& m, process_key holder, process_key me) {
  if (process_running(holder))
    return false;
  return m.owner.compare_exchange_strong(holder, me);
}

// A waiter that leaves without the word may have been the one a give_back woke: wake
// another, so that a free word never has only sleepers.
void pass_wake_on(process_mutex& m) {
  if (m.owner.load() == 0 && m.sleepers.load() > 0)
    futex_wake(m.released, 1);
}

// Counted among the sleepers before the last look at the owner: a give_back that freed the
// word before that look is seen by it, and one after sees the sleeper and wakes it (both
// sides' operations are sequentially consistent). So give_back bumps and wakes only when
// someone sleeps, and an uncontended release is one exchange and one load.
void sleep_while_held(process_mutex& m, process_key holder, const deadline& until) {
  m.sleepers.fetch_add(1);
  auto seen = m.released.load();
  if (m.owner.load() == holder)
    futex_wait(m.released, seen, until.next_sleep(death_check_period));
  m.sleepers.fetch_sub(1);
}

} // namespace

taken take(process_mutex& m, const deadline& until) {
  const process_key me = this_process_key();
  process_key holder = 0;
  if (m.owner.compare_exchange_strong(holder, me))
    return taken::yes;
  process_key watched = holder;
  auto watched_since = sync_clock::now();
  bool checked_at_end = false;
  for (;;) {
    holder = m.owner.load();
    if (holder == 0) {
      if (m.owner.compare_exchange_strong(holder, me))
        return taken::yes;
      continue;
    }
    auto now = sync_clock::now();
    if (holder != watched) {
      watched = holder;
      watched_since = now;
    }
    // Every period with the same holder, and once when the deadline passes (a try, a short
    // timeout: once per call, however often the holder changes), however recent the last
    // periodic check: the holder may have died since.
    bool at_end = until.passed() && !std::exchange(checked_at_end, true);
    if (at_end || now - watched_since >= death_check_period) {
      watched_since = now;
      if (take_from_dead(m, holder, me))
        return taken::owner_died;
      continue;
    }
    if (until.passed()) {
      pass_wake_on(m);
      return taken::no;
    }
    sleep_while_held(m, holder, until);
  }
}

bool give_back(process_mutex& m) {
  bool was_held = m.owner.exchange(0) != 0;
  if (m.sleepers.load() > 0) {
    m.released.fetch_add(1);
    futex_wake(m.released, 1);
  }
  return was_held;
}

} // namespace mproc::detail
