#include "mproc/actors/condition.hpp"

#include <algorithm>

#include <signal.h>

#include <cerrno>
#include <new>

#include "mproc/actors/futex.hpp"
#include "mproc/actors/segment.hpp"
#include "mproc/runtime/process_key.hpp"
#include "mproc/runtime/message_types.hpp"

namespace mproc {

namespace detail {

enum : std::uint32_t { slot_free = 0, slot_waiting = 1, slot_notified = 2 };

// One waiting thread. Changed only by threads holding the condition's lock; `state` is
// also the futex its waiter sleeps on, so a notify wakes exactly the waiters it chose.
struct waiter_slot {
  std::atomic<std::uint32_t> state{slot_free};
  std::atomic<process_key> who{0};
  std::atomic<std::uint64_t> ticket{0};  // order of arrival: notify wakes the oldest
};

struct condition_state {
  std::atomic<std::uint64_t> next_ticket{1};
  std::atomic<std::uint32_t> used{0};
  waiter_slot slots[condition::max_waiters];
};

namespace {

// Slots in use, never more than there are: the count is in memory other processes write.
std::uint32_t used_slots(const condition_state& s) {
  return std::min(s.used.load(), condition::max_waiters);
}

// A free slot for this thread (the lock held); slots of dead waiters are reused when no
// other is free.
waiter_slot& claim_slot(condition_state& s) {
  auto used = used_slots(s);
  for (std::uint32_t i = 0; i < used; ++i)
    if (s.slots[i].state.load() == slot_free)
      return s.slots[i];
  if (used < condition::max_waiters) {
    s.used.store(used + 1);
    return s.slots[used];
  }
  for (std::uint32_t i = 0; i < used; ++i)
    if (!process_running(s.slots[i].who.load()))
      return s.slots[i];
  throw_misuse("more than " + std::to_string(condition::max_waiters)
               + " threads wait on one condition");
}

// A slot notified for a waiter that died before it could take the notify: a waiter that
// finds one takes that notify over (a wake-up it may not have been meant for, which a
// condition allows).
waiter_slot* dead_notified(condition_state& s, const waiter_slot& mine) {
  for (std::uint32_t i = 0, n = used_slots(s); i < n; ++i) {
    auto& slot = s.slots[i];
    if (&slot != &mine && slot.state.load() == slot_notified
        && !process_running(slot.who.load()))
      return &slot;
  }
  return nullptr;
}

// A cheap check for notify: kill(pid, 0) says ESRCH only for a pid nobody has. A pid taken
// by a later process passes; its waiter's notify then goes to a live waiter within 50 ms.
bool surely_gone(process_key who) {
  return ::kill(pid_of(who), 0) != 0 && errno == ESRCH;
}

// The waiting slot that arrived first, or null.
waiter_slot* oldest_waiting(condition_state& s) {
  waiter_slot* oldest = nullptr;
  for (std::uint32_t i = 0, n = used_slots(s); i < n; ++i) {
    auto& slot = s.slots[i];
    if (slot.state.load() == slot_waiting
        && (oldest == nullptr || slot.ticket.load() < oldest->ticket.load()))
      oldest = &slot;
  }
  return oldest;
}

} // namespace
} // namespace detail

namespace {
[[maybe_unused]] const bool registered = detail::register_message_type<condition>();
}

namespace {
std::shared_ptr<detail::segment> new_condition_memory() {
  auto seg = detail::segment::create(detail::segment_kind::condition,
                                     sizeof(detail::condition_state));
  new (seg->payload()) detail::condition_state{};
  return seg;
}
} // namespace

condition::condition() : condition{rlock{}} {}
condition::condition(mproc::lock l) : condition{new_condition_memory(), std::move(l)} {}
condition::condition(mproc::rlock l) : condition{new_condition_memory(), std::move(l)} {}

condition::condition(std::shared_ptr<detail::segment> seg,
                     std::variant<mproc::lock, mproc::rlock> l)
    : seg_{std::move(seg)},
      s_{seg_ ? &detail::payload_as<detail::condition_state>(*seg_) : nullptr},
      lock_{std::move(l)} {}

acquired condition::acquire(bool block, wait_timeout timeout) const {
  return std::visit([&](auto& l) { return l.acquire(block, timeout); }, lock_);
}

void condition::release() const {
  std::visit([](auto& l) { l.release(); }, lock_);
}

bool condition::lock_held() const {
  if (const auto* l = std::get_if<mproc::lock>(&lock_))
    return l->held_by_this_thread();
  return std::get<mproc::rlock>(lock_).held_by_this_thread();
}

bool condition::wait(wait_timeout timeout) const {
  if (!seg_ || !lock_held())
    detail::throw_misuse("cannot wait on a condition whose lock this thread does not hold");
  auto& slot = detail::claim_slot(*s_);
  slot.who.store(this_process_key());
  slot.ticket.store(s_->next_ticket.fetch_add(1));
  slot.state.store(detail::slot_waiting);
  auto until = detail::deadline::after(timeout);
  bool woken = false;
  for (;;) {
    bool saw_dead_notify = sleep(slot, until);
    // The lock is held again: the slots are ours to change.
    if (slot.state.load() == detail::slot_notified) {
      woken = true;
      break;
    }
    if (saw_dead_notify) {
      if (auto* dead = detail::dead_notified(*s_, slot); dead != nullptr) {
        dead->state.store(detail::slot_free);  // its notify is this waiter's now
        woken = true;
        break;
      }
      continue;  // another waiter took that notify over first: wait on
    }
    if (until.passed())
      break;
  }
  slot.state.store(detail::slot_free);
  return woken;
}

// Lets the lock go and sleeps until this slot is notified, the deadline passes, or a notify
// is seen that went to a waiter that died (true); then takes the lock back.
bool condition::sleep(detail::waiter_slot& slot, const detail::deadline& until) const {
  unsigned depth = let_go();
  detail::periodic check;
  bool saw_dead_notify = false;
  while (slot.state.load() == detail::slot_waiting && !until.passed()) {
    if (check.due() && detail::dead_notified(*s_, slot) != nullptr) {
      saw_dead_notify = true;
      break;
    }
    detail::futex_wait(slot.state, detail::slot_waiting,
                       until.next_sleep(detail::death_check_period));
  }
  take_back(depth);
  return saw_dead_notify;
}

void condition::notify(unsigned n) const {
  if (!seg_ || !lock_held())
    detail::throw_misuse("cannot notify a condition whose lock this thread does not hold");
  for (unsigned i = 0; i < n;) {
    auto* slot = detail::oldest_waiting(*s_);
    if (slot == nullptr)
      return;
    if (detail::surely_gone(slot->who.load())) {  // a waiter killed: its slot is free
      slot->state.store(detail::slot_free);
      continue;
    }
    slot->state.store(detail::slot_notified);
    detail::futex_wake(slot->state, 1);
    ++i;
  }
}

unsigned condition::let_go() const {
  if (const auto* l = std::get_if<mproc::lock>(&lock_)) {
    l->release();
    return 0;
  }
  return std::get<mproc::rlock>(lock_).release_all();
}

void condition::take_back(unsigned depth) const {
  if (const auto* l = std::get_if<mproc::lock>(&lock_))
    (void)l->acquire();
  else
    std::get<mproc::rlock>(lock_).restore(depth);
}

void condition::notify_all() const { notify(max_waiters); }

} // namespace mproc

namespace mproc::wire {

condition codec<condition>::blank() {
  return condition{nullptr, codec<lock>::blank()};
}

void codec<condition>::encode(packer& pk, const condition& c, codec_state& st) {
  pk.pack_array(3);
  mproc::detail::encode_segment(pk, c.seg_.get(), st, "condition");
  bool recursive = std::holds_alternative<rlock>(c.lock_);
  pk.pack(recursive);
  if (recursive)
    codec<rlock>::encode(pk, std::get<rlock>(c.lock_), st);
  else
    codec<lock>::encode(pk, std::get<lock>(c.lock_), st);
}

bool codec<condition>::decode(const msgpack::object& o, condition& out, codec_state& st) {
  if (o.type != msgpack::type::ARRAY || o.via.array.size != 3)
    return type_mismatch(st, "condition [memory, recursive, lock]", o);
  const auto* f = o.via.array.ptr;
  auto seg = mproc::detail::decode_segment(f[0], st, mproc::detail::segment_kind::condition, 0,
                                           sizeof(mproc::detail::condition_state), "condition");
  bool recursive = false;
  if (!seg || !codec<bool>::decode(f[1], recursive, st))
    return false;
  if (recursive) {
    rlock l = codec<rlock>::blank();
    if (!codec<rlock>::decode(f[2], l, st))
      return false;
    out = condition{std::move(seg), std::move(l)};
  } else {
    lock l = codec<lock>::blank();
    if (!codec<lock>::decode(f[2], l, st))
      return false;
    out = condition{std::move(seg), std::move(l)};
  }
  return true;
}

} // namespace mproc::wire
