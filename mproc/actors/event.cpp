#include "mproc/actors/event.hpp"

#include <new>

#include "mproc/actors/futex.hpp"
#include "mproc/actors/guard.hpp"
#include "mproc/actors/segment.hpp"
#include "mproc/runtime/message_types.hpp"

namespace mproc {

namespace detail {
struct event_state {
  std::atomic<std::uint32_t> flag{0};     // 1 when set
  std::atomic<std::uint32_t> sets{0};     // futex word: bumped by each set()
  std::atomic<std::uint32_t> sleepers{0};
};
} // namespace detail

namespace {
[[maybe_unused]] const bool registered = detail::register_message_type<event>();

} // namespace

event::event() {
  seg_ = detail::segment::create(detail::segment_kind::event, sizeof(detail::event_state));
  s_ = new (seg_->payload()) detail::event_state{};
}

event::event(std::shared_ptr<detail::segment> seg, detail::event_state* s)
    : seg_{std::move(seg)}, s_{s} {}

// A moved-from handle has no segment (its raw pointer is stale): checked on every use.
detail::event_state& event::state() const {
  if (!seg_)
    detail::throw_misuse("an empty event handle (default-made for decoding, or moved from)");
  return *s_;
}

bool event::is_set() const { return state().flag.load() != 0; }

void event::set() const {
  auto& s = state();
  if (s.flag.exchange(1) != 0)
    return;
  s.sets.fetch_add(1);
  if (s.sleepers.load() > 0)
    detail::futex_wake(s.sets, detail::all_waiters);
}

void event::clear() const { state().flag.store(0); }

// Sleeps on the count of sets rather than on the flag, so that a set() followed at once by
// clear() still ends the wait (which then returns the flag, false, as Python's does).
bool event::wait(wait_timeout timeout) const {
  auto& s = state();
  auto until = detail::deadline::after(timeout);
  auto sets = s.sets.load();
  while (s.flag.load() == 0) {
    if (until.passed())
      return false;
    s.sleepers.fetch_add(1);
    // No death to watch for: the period only bounds a sleep that nothing else ends.
    detail::futex_wait(s.sets, sets, until.next_sleep(std::chrono::seconds{1}));
    s.sleepers.fetch_sub(1);
    if (s.sets.load() != sets)
      return s.flag.load() != 0;
  }
  return true;
}

} // namespace mproc

namespace mproc::wire {

event codec<event>::blank() { return event{nullptr, nullptr}; }

void codec<event>::encode(packer& pk, const event& e, codec_state& st) {
  mproc::detail::encode_segment(pk, e.seg_.get(), st, "event");
}

bool codec<event>::decode(const msgpack::object& o, event& out, codec_state& st) {
  auto seg = mproc::detail::decode_segment(o, st, mproc::detail::segment_kind::event, 0,
                                           sizeof(mproc::detail::event_state), "event");
  if (!seg)
    return false;
  auto* s = &mproc::detail::payload_as<mproc::detail::event_state>(*seg);
  out = event{std::move(seg), s};
  return true;
}

} // namespace mproc::wire
