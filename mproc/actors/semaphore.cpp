#include "mproc/actors/semaphore.hpp"

#include <algorithm>

#include <cstdlib>
#include <mutex>
#include <stdexcept>
#include <new>
#include <utility>
#include <vector>

#include "mproc/actors/process_mutex.hpp"
#include "mproc/actors/segment.hpp"
#include "mproc/runtime/message_types.hpp"
#include "mproc/runtime/node.hpp"

namespace mproc {

namespace detail {

struct holder_slot {
  std::atomic<process_key> who{0};
  std::atomic<std::int64_t> held{0};  // tokens it acquired and has not given back
};

// Changed only under `guard`, one store at a time, so a process that dies anywhere in an
// update leaves a state the next one can use: the value is never stored, it is `base`
// minus the tokens held.
struct semaphore_state {
  process_mutex guard;
  std::atomic<std::uint32_t> changed{0};   // futex word: bumped by each release
  std::atomic<std::uint32_t> sleepers{0};  // processes in futex_wait on `changed`
  std::atomic<std::int64_t> base{0};
  std::atomic<std::int64_t> bound{-1};     // a bounded semaphore's initial value, else -1
  // Set by the first release from a process that holds no token: the counter pattern, where
  // an acquired token is an item taken for good and no process holds any (see release()).
  std::atomic<std::uint32_t> counting{0};
  std::atomic<std::uint32_t> slots_used{0};
  holder_slot slots[semaphore::max_holders];
};

namespace {

// Holds the state's guard for a scope. Its owner dying inside an update is harmless (see
// semaphore_state), so owner_died is not reported for the guard.
class guarded {
public:
  explicit guarded(semaphore_state& s) : s_{s} {
    (void)take(s_.guard, deadline::after(std::nullopt));
  }
  ~guarded() { give_back(s_.guard); }
  guarded(const guarded&) = delete;
  guarded& operator=(const guarded&) = delete;

  std::int64_t value() const {
    std::int64_t v = s_.base.load();
    for (std::uint32_t i = 0, n = used(); i < n; ++i)
      v -= s_.slots[i].held.load();
    return v;
  }

  // This process's slot, claimed if it has none; null when every slot is taken by a
  // running process.
  holder_slot* mine(bool claim) {
    const auto me = this_process_key();
    for (std::uint32_t i = 0, n = used(); i < n; ++i)
      if (s_.slots[i].who.load() == me)
        return &s_.slots[i];
    if (!claim)
      return nullptr;
    if (auto* free = find_free(); free != nullptr) {
      free->who.store(me);
      return free;
    }
    if (used() < semaphore::max_holders) {
      auto& slot = s_.slots[used()];
      slot.held.store(0);
      slot.who.store(me);
      s_.slots_used.fetch_add(1);  // a death before this leaves the slot unseen: harmless
      return &slot;
    }
    return nullptr;
  }

  // Gives back the tokens of processes that died holding them; true if there were some.
  bool reclaim_dead() {
    bool any = false;
    for (std::uint32_t i = 0, n = used(); i < n; ++i) {
      auto& slot = s_.slots[i];
      auto who = slot.who.load();
      if (who == 0 || who == this_process_key() || process_running(who))
        continue;
      any = any || slot.held.load() > 0;
      slot.held.store(0);
      slot.who.store(0);
    }
    return any;
  }

  // Every token held is used up, as when a process ends in order (see retire()).
  void retire_all() {
    for (std::uint32_t i = 0, n = used(); i < n; ++i)
      if (s_.slots[i].held.load() > 0)
        retire(s_.slots[i]);
  }

  // base goes down first, so a death halfway loses tokens rather than inventing them.
  void retire(holder_slot& slot) {
    s_.base.fetch_sub(slot.held.load());
    slot.held.store(0);
    slot.who.store(0);
  }

private:
  // Never more than there are: the count is in memory other processes write.
  std::uint32_t used() const { return std::min(s_.slots_used.load(), semaphore::max_holders); }

  holder_slot* find_free() {
    for (std::uint32_t i = 0, n = used(); i < n; ++i)
      if (s_.slots[i].who.load() == 0)
        return &s_.slots[i];
    return nullptr;
  }

  semaphore_state& s_;
};

// got_first: this process held none before (its holdings must list the semaphore).
enum class attempt { got, got_first, none_free, no_slot };

attempt try_take(semaphore_state& s, guarded& g) {
  if (g.value() <= 0)
    return attempt::none_free;
  if (s.counting.load() != 0) {
    s.base.fetch_sub(1);  // an item taken for good: nobody holds it
    return attempt::got;
  }
  auto* slot = g.mine(true);
  if (slot == nullptr) {
    g.reclaim_dead();  // frees dead processes' slots, holding tokens or not
    slot = g.mine(true);
  }
  if (slot == nullptr)
    return attempt::no_slot;
  return slot->held.fetch_add(1) == 0 ? attempt::got_first : attempt::got;
}

// Takes one token from `slot`; a slot left with none is freed for other processes (held
// first, then who, so a death in between leaves an empty slot of a dead process).
void give_one(holder_slot& slot) {
  if (slot.held.fetch_sub(1) == 1)
    slot.who.store(0);
}

// The semaphores this process holds tokens of. Tokens a process still holds when it ends
// in order (its actor returns or throws, the program exits) are used up, as in Python:
// with the counter pattern a consumer that took three items and ended took them for good.
// Only a process that dies without ending in order (killed) gives its tokens back.
class holdings {
public:
  static holdings& of_this_process() {
    static auto* h = new holdings;  // never destroyed: used from exit hooks
    return *h;
  }

  // Called outside every semaphore's guard (the order is always this mutex, then a guard).
  // Entries whose tokens are all given back (by this process or, in the counter pattern,
  // for it by another) are dropped here, so the list holds what this process holds.
  void add(std::shared_ptr<segment> seg, semaphore_state* s) {
    std::lock_guard guard{mtx_};
    hook_exit();
    std::erase_if(held_, [s](const auto& e) {
      if (e.second == s)
        return false;
      guarded g{*e.second};
      return g.mine(false) == nullptr;
    });
    for (auto& e : held_)
      if (e.second == s)
        return;
    held_.emplace_back(std::move(seg), s);
  }

  // What this process still holds is used up.
  void retire_all() {
    std::lock_guard guard{mtx_};
    for (auto& [seg, s] : held_) {
      guarded g{*s};
      if (auto* slot = g.mine(false); slot != nullptr)
        g.retire(*slot);
    }
    held_.clear();
  }

private:
  // A child ends by _exit after its node's exit hooks; a root by exit().
  void hook_exit() {
    auto me = this_process_key();
    if (std::exchange(hooked_for_, me) == me)
      return;
    std::atexit([] { of_this_process().retire_all(); });
    try {
      mproc::this_node().at_exit([] { of_this_process().retire_all(); });
    } catch (const std::logic_error&) {
      // no node in this process: exit() alone ends it
    }
  }

  std::mutex mtx_;
  std::vector<std::pair<std::shared_ptr<segment>, semaphore_state*>> held_;
  process_key hooked_for_ = 0;
};

void wake_one(semaphore_state& s) {
  s.changed.fetch_add(1);
  if (s.sleepers.load() > 0)
    futex_wake(s.changed, 1);
}

} // namespace
} // namespace detail

namespace {
[[maybe_unused]] const bool registered = detail::register_message_type<semaphore>()
                                         && detail::register_message_type<bounded_semaphore>();
}

semaphore::semaphore(std::int64_t value) : semaphore{value, -1} {}

semaphore::semaphore(std::int64_t value, std::int64_t bound) {
  if (value < 0)
    detail::throw_misuse("a semaphore's initial value must be 0 or more, not "
                         + std::to_string(value));
  seg_ = detail::segment::create(detail::segment_kind::semaphore, sizeof(detail::semaphore_state));
  s_ = new (seg_->payload()) detail::semaphore_state{};
  s_->base.store(value);
  s_->bound.store(bound);
}

semaphore::semaphore(std::shared_ptr<detail::segment> seg, detail::semaphore_state* s)
    : seg_{std::move(seg)}, s_{s} {}

// A moved-from handle has no segment (its raw pointer is stale): checked on every use.
detail::semaphore_state& semaphore::state() const {
  if (!seg_)
    detail::throw_misuse("an empty semaphore handle (default-made for decoding, or moved from)");
  return *s_;
}

acquired semaphore::acquire(bool block, wait_timeout timeout) const {
  (void)state();
  auto until = detail::deadline::from(block, timeout);
  detail::periodic check;
  bool reclaimed = false;
  bool checked_at_end = false;
  for (;;) {
    auto seen = s_->changed.load();
    auto a = detail::attempt::none_free;
    {
      detail::guarded g{*s_};
      a = detail::try_take(*s_, g);
      if (a == detail::attempt::none_free)
        reclaimed = false;  // what was reclaimed went to another process
      if (a == detail::attempt::no_slot)
        detail::throw_misuse("more than " + std::to_string(max_holders)
                       + " processes hold tokens of one semaphore");
      bool last_chance = until.passed() && !std::exchange(checked_at_end, true);
      if (a == detail::attempt::none_free && (last_chance || check.due())
          && g.reclaim_dead()) {
        reclaimed = true;
        continue;
      }
    }
    if (a == detail::attempt::got_first)
      detail::holdings::of_this_process().add(seg_, s_);
    if (a == detail::attempt::got || a == detail::attempt::got_first)
      return {true, reclaimed};
    if (until.passed()) {
      if (value() > 0)
        detail::wake_one(*s_);  // the wake-up this caller may have had goes to another
      return {};
    }
    s_->sleepers.fetch_add(1);
    detail::futex_wait(s_->changed, seen, until.next_sleep(detail::death_check_period));
    s_->sleepers.fetch_sub(1);
  }
}

void semaphore::release() const {
  auto& s = state();
  {
    detail::guarded g{s};
    auto bound = s.bound.load();
    if (bound >= 0 && g.value() >= bound)
      detail::throw_misuse("bounded semaphore released too many times");
    auto* slot = g.mine(false);
    if (slot != nullptr && slot->held.load() > 0) {
      detail::give_one(*slot);
    } else {
      // A process holding none releases: the counter pattern (one process releases, others
      // acquire). An acquired token is then an item taken, not a resource held: what was
      // acquired so far is used up, and a consumer killed later gives back none of the
      // items it took, as in Python (where no token ever comes back).
      s.counting.store(1);
      g.reclaim_dead();  // a killed holder's tokens come back first, as an acquire would have
      g.retire_all();
      // A bounded semaphore that a killed holder's token brought back to its bound takes
      // this release as that token's (Python's value after a release for the dead holder),
      // never one above the bound.
      if (bound < 0 || g.value() < bound)
        s.base.fetch_add(1);
    }
  }
  detail::wake_one(s);
}

std::int64_t semaphore::value() const {
  detail::guarded g{state()};
  return g.value();
}

} // namespace mproc

namespace mproc::wire {

semaphore codec<semaphore>::blank() { return semaphore{nullptr, nullptr}; }
bounded_semaphore codec<bounded_semaphore>::blank() {
  return bounded_semaphore{semaphore{nullptr, nullptr}};
}

void codec<semaphore>::encode(packer& pk, const semaphore& s, codec_state& st) {
  mproc::detail::encode_segment(pk, s.seg_.get(), st, "semaphore");
}

bool codec<semaphore>::decode(const msgpack::object& o, semaphore& out, codec_state& st) {
  auto seg = mproc::detail::decode_segment(o, st, mproc::detail::segment_kind::semaphore, 0,
                                           sizeof(mproc::detail::semaphore_state), "semaphore");
  if (!seg)
    return false;
  auto* s = &mproc::detail::payload_as<mproc::detail::semaphore_state>(*seg);
  out = semaphore{std::move(seg), s};
  return true;
}

void codec<bounded_semaphore>::encode(packer& pk, const bounded_semaphore& s, codec_state& st) {
  codec<semaphore>::encode(pk, s, st);
}

bool codec<bounded_semaphore>::decode(const msgpack::object& o, bounded_semaphore& out,
                                      codec_state& st) {
  semaphore s = codec<semaphore>::blank();
  if (!codec<semaphore>::decode(o, s, st))
    return false;
  if (s.s_->bound.load() < 0)
    return st.fail("bounded_semaphore: the shared memory holds an unbounded semaphore");
  out = bounded_semaphore{std::move(s)};
  return true;
}

} // namespace mproc::wire
