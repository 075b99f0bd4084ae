#include "actors/semaphore.hpp"

#include <new>

#include "actors/process_mutex.hpp"
#include "actors/segment.hpp"
#include "runtime/message_types.hpp"

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

  // A slot whose tokens another process gives back (the counter pattern).
  holder_slot* any_holder() {
    for (std::uint32_t i = 0, n = used(); i < n; ++i)
      if (s_.slots[i].held.load() > 0)
        return &s_.slots[i];
    return nullptr;
  }

private:
  std::uint32_t used() const { return s_.slots_used.load(); }

  holder_slot* find_free() {
    for (std::uint32_t i = 0, n = used(); i < n; ++i)
      if (s_.slots[i].who.load() == 0)
        return &s_.slots[i];
    return nullptr;
  }

  semaphore_state& s_;
};

enum class attempt { got, none_free, no_slot };

attempt try_take(guarded& g) {
  if (g.value() <= 0)
    return attempt::none_free;
  auto* slot = g.mine(true);
  if (slot == nullptr && g.reclaim_dead())
    slot = g.mine(true);
  if (slot == nullptr)
    return attempt::no_slot;
  slot->held.fetch_add(1);
  return attempt::got;
}

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
    detail::throw_misuse("a semaphore's initial value must be 0 or more, not " + std::to_string(value));
  seg_ = detail::segment::create(detail::segment_kind::semaphore, sizeof(detail::semaphore_state));
  s_ = new (seg_->payload()) detail::semaphore_state{};
  s_->base.store(value);
  s_->bound.store(bound);
}

semaphore::semaphore(std::shared_ptr<detail::segment> seg, detail::semaphore_state* s)
    : seg_{std::move(seg)}, s_{s} {}

acquired semaphore::acquire(bool block, std::optional<millis> timeout) const {
  if (s_ == nullptr)
    detail::throw_misuse("acquire on an empty semaphore handle");
  auto until = detail::deadline::from(block, timeout);
  detail::periodic check;
  bool reclaimed = false;
  bool checked_at_end = false;
  for (;;) {
    auto seen = s_->changed.load();
    {
      detail::guarded g{*s_};
      auto a = detail::try_take(g);
      if (a == detail::attempt::got)
        return {true, reclaimed};
      if (a == detail::attempt::no_slot)
        detail::throw_misuse("more than " + std::to_string(max_holders)
                       + " processes hold tokens of one semaphore");
      bool last_chance = until.passed() && !std::exchange(checked_at_end, true);
      if ((last_chance || check.due()) && g.reclaim_dead()) {
        reclaimed = true;
        continue;
      }
    }
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
  if (s_ == nullptr)
    detail::throw_misuse("release on an empty semaphore handle");
  {
    detail::guarded g{*s_};
    auto bound = s_->bound.load();
    if (bound >= 0 && g.value() >= bound)
      detail::throw_misuse("bounded semaphore released too many times");
    auto* slot = g.mine(false);
    if (slot == nullptr || slot->held.load() <= 0)
      slot = g.any_holder();
    if (slot != nullptr)
      slot->held.fetch_sub(1);
    else
      s_->base.fetch_add(1);
  }
  detail::wake_one(*s_);
}

std::int64_t semaphore::value() const {
  if (s_ == nullptr)
    return 0;
  detail::guarded g{*s_};
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
