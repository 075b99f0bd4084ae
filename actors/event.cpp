#include "actors/event.hpp"

#include <new>

#include "actors/futex.hpp"
#include "actors/guard.hpp"
#include "actors/segment.hpp"
#include "runtime/message_types.hpp"

namespace mproc {

namespace detail {
struct event_state {
  std::atomic<std::uint32_t> flag{0};  // futex word: 1 when set
  std::atomic<std::uint32_t> sleepers{0};
};
} // namespace detail

namespace {
[[maybe_unused]] const bool registered = detail::register_message_type<event>();

detail::event_state& state_of(detail::event_state* s) {
  if (s == nullptr)
    detail::throw_misuse("an empty event handle");
  return *s;
}
} // namespace

event::event() {
  seg_ = detail::segment::create(detail::segment_kind::event, sizeof(detail::event_state));
  s_ = new (seg_->payload()) detail::event_state{};
}

event::event(std::shared_ptr<detail::segment> seg, detail::event_state* s)
    : seg_{std::move(seg)}, s_{s} {}

bool event::is_set() const { return state_of(s_).flag.load() != 0; }

void event::set() const {
  auto& s = state_of(s_);
  if (s.flag.exchange(1) == 0 && s.sleepers.load() > 0)
    detail::futex_wake(s.flag, detail::all_waiters);
}

void event::clear() const { state_of(s_).flag.store(0); }

bool event::wait(std::optional<millis> timeout) const {
  auto& s = state_of(s_);
  auto until = detail::deadline::after(timeout);
  while (s.flag.load() == 0) {
    if (until.passed())
      return false;
    // No death to watch for: the period only bounds a sleep that nothing else ends.
    s.sleepers.fetch_add(1);
    detail::futex_wait(s.flag, 0, until.next_sleep(std::chrono::seconds{1}));
    s.sleepers.fetch_sub(1);
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
