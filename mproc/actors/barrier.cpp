#include "mproc/actors/barrier.hpp"

#include <new>

#include "mproc/actors/guard.hpp"
#include "mproc/actors/process_mutex.hpp"
#include "mproc/actors/segment.hpp"
#include "mproc/runtime/message_types.hpp"

namespace mproc {

namespace detail {

enum : std::uint8_t { phase_passed = 1, phase_broken = 2 };

// Changed under `guard`; `phase` is stored last in every change, so a process that dies
// inside one leaves waiters sleeping on the old phase, which the next change (a waiter
// that finds the guard's owner dead breaks the barrier) wakes.
struct barrier_state {
  process_mutex guard;
  std::atomic<std::uint32_t> phase{0};  // futex word: bumped when the parties pass or break
  std::atomic<std::uint32_t> parties{0};
  std::atomic<std::uint32_t> arrived{0};  // parties waiting in this phase
  std::atomic<std::uint32_t> broken{0};   // until reset()
  // How recent phases ended (phase % 16): a waiter woken late reads its own phase's.
  std::atomic<std::uint8_t> outcome[16]{};
  std::atomic<process_key> party[barrier::max_parties]{};  // who waits, in order of arrival
};

namespace {

// Holds the guard for a scope. An owner that died inside a change may have left the phase
// half done: the barrier breaks, as it does when a party dies.
class guarded {
public:
  explicit guarded(barrier_state& s) : s_{s} {
    if (take(s_.guard, deadline::after(std::nullopt)) == taken::owner_died)
      end_phase(phase_broken);
  }
  ~guarded() { give_back(s_.guard); }
  guarded(const guarded&) = delete;
  guarded& operator=(const guarded&) = delete;

  void end_phase(std::uint8_t how) {
    auto p = s_.phase.load();
    s_.outcome[p % 16].store(how);
    s_.arrived.store(0);
    if (how == phase_broken)
      s_.broken.store(1);
    s_.phase.store(p + 1);
    futex_wake(s_.phase, all_waiters);
  }

private:
  barrier_state& s_;
};

// Breaks phase `p` if it is still the current one.
void break_phase(barrier_state& s, std::uint32_t p) {
  guarded g{s};
  if (s.phase.load() == p)
    g.end_phase(phase_broken);
}

// One waiter's check, every period: the party that arrived after it (the first, for the
// last) still runs, and so does whoever holds the guard. Each waiter checks one other, so
// the cost does not grow with the number of parties.
bool someone_died(barrier_state& s, std::uint32_t index) {
  // The guard first: a party that died ending the phase left `arrived` at 0.
  auto owner = s.guard.owner.load();
  if (owner != 0 && owner != this_process_key() && !process_running(owner))
    return true;
  auto arrived = s.arrived.load();
  if (arrived == 0)
    return false;
  auto next = s.party[(index + 1) % arrived].load();
  return next != 0 && next != this_process_key() && !process_running(next);
}

[[noreturn]] void throw_broken() {
  std::string text = "the barrier is broken";
  throw mproc::error{make_error(errc::broken_barrier, text), text};
}

} // namespace
} // namespace detail

namespace {
[[maybe_unused]] const bool registered = detail::register_message_type<barrier>();
}

barrier::barrier(std::uint32_t parties) {
  if (parties == 0 || parties > max_parties)
    detail::throw_misuse("a barrier has 1 to " + std::to_string(max_parties) + " parties, not "
                         + std::to_string(parties));
  seg_ = detail::segment::create(detail::segment_kind::barrier, sizeof(detail::barrier_state));
  s_ = new (seg_->payload()) detail::barrier_state{};
  s_->parties.store(parties);
}

barrier::barrier(std::shared_ptr<detail::segment> seg, detail::barrier_state* s)
    : seg_{std::move(seg)}, s_{s} {}

// A moved-from handle has no segment (its raw pointer is stale): checked on every use.
detail::barrier_state& barrier::state() const {
  if (!seg_)
    detail::throw_misuse("an empty barrier handle (default-made for decoding, or moved from)");
  return *s_;
}

std::uint32_t barrier::wait(wait_timeout timeout) const {
  auto& s = state();
  std::uint32_t p = 0;
  std::uint32_t index = 0;
  {
    detail::guarded g{s};
    if (s.broken.load() != 0)
      detail::throw_broken();
    p = s.phase.load();
    index = s.arrived.load();
    if (index + 1 >= s.parties.load()) {
      g.end_phase(detail::phase_passed);
      return index;
    }
    s.party[index].store(this_process_key());
    s.arrived.store(index + 1);
  }
  auto until = detail::deadline::after(timeout);
  detail::periodic check;
  for (;;) {
    if (s.phase.load() != p) {
      if (s.outcome[p % 16].load() == detail::phase_passed)
        return index;
      detail::throw_broken();
    }
    if (until.passed() || (check.due() && detail::someone_died(s, index))) {
      detail::break_phase(s, p);
      continue;
    }
    detail::futex_wait(s.phase, p, until.next_sleep(detail::death_check_period));
  }
}

void barrier::reset() const {
  auto& s = state();
  detail::guarded g{s};
  if (s.arrived.load() > 0)
    g.end_phase(detail::phase_broken);  // the waiters break, as in Python
  s.broken.store(0);
}

void barrier::abort() const {
  auto& s = state();
  detail::guarded g{s};
  g.end_phase(detail::phase_broken);
}

std::uint32_t barrier::parties() const { return state().parties.load(); }

std::uint32_t barrier::n_waiting() const {
  auto& s = state();
  return s.broken.load() != 0 ? 0 : s.arrived.load();
}

bool barrier::broken() const { return state().broken.load() != 0; }

} // namespace mproc

namespace mproc::wire {

barrier codec<barrier>::blank() { return barrier{nullptr, nullptr}; }

void codec<barrier>::encode(packer& pk, const barrier& b, codec_state& st) {
  mproc::detail::encode_segment(pk, b.seg_.get(), st, "barrier");
}

bool codec<barrier>::decode(const msgpack::object& o, barrier& out, codec_state& st) {
  auto seg = mproc::detail::decode_segment(o, st, mproc::detail::segment_kind::barrier, 0,
                                           sizeof(mproc::detail::barrier_state), "barrier");
  if (!seg)
    return false;
  auto* s = &mproc::detail::payload_as<mproc::detail::barrier_state>(*seg);
  auto parties = s->parties.load();
  if (parties == 0 || parties > barrier::max_parties)
    return st.fail("barrier: its shared memory is corrupt");
  out = barrier{std::move(seg), s};
  return true;
}

} // namespace mproc::wire
