#include "actors/condition.hpp"

#include <algorithm>
#include <new>

#include "actors/futex.hpp"
#include "actors/segment.hpp"
#include "runtime/message_types.hpp"

namespace mproc {

namespace detail {
// Waiters count themselves in `sleeping`; a notify moves up to n of them to `to_wake` and
// bumps `seq`; a waiter leaves when it takes one from `to_wake`.
struct condition_state {
  std::atomic<std::uint32_t> seq{0};  // futex word
  std::atomic<std::uint32_t> sleeping{0};
  std::atomic<std::uint32_t> to_wake{0};
};

namespace {

// Takes one from `n` if it is positive.
bool take_one(std::atomic<std::uint32_t>& n) {
  auto v = n.load();
  while (v > 0)
    if (n.compare_exchange_weak(v, v - 1))
      return true;
  return false;
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

acquired condition::acquire(bool block, std::optional<millis> timeout) const {
  return std::visit([&](auto& l) { return l.acquire(block, timeout); }, lock_);
}

void condition::release() const {
  std::visit([](auto& l) { l.release(); }, lock_);
}

bool condition::lock_held() const {
  if (const auto* l = std::get_if<mproc::lock>(&lock_))
    return l->held_here();
  return std::get<mproc::rlock>(lock_).held_by_this_thread();
}

bool condition::wait(std::optional<millis> timeout) const {
  if (s_ == nullptr || !lock_held())
    detail::throw_misuse("cannot wait on a condition whose lock this thread does not hold");
  auto& s = *s_;
  s.sleeping.fetch_add(1);
  unsigned depth = 0;
  if (const auto* l = std::get_if<mproc::lock>(&lock_))
    l->release();
  else
    depth = std::get<mproc::rlock>(lock_).release_all();
  auto until = detail::deadline::after(timeout);
  bool woken = false;
  for (;;) {
    auto seen = s.seq.load();
    if (detail::take_one(s.to_wake)) {
      woken = true;
      break;
    }
    if (until.passed())
      break;
    detail::futex_wait(s.seq, seen, until.next_sleep(std::chrono::seconds{1}));
  }
  // Timed out: uncount this waiter, unless a notify already moved it to to_wake (then it
  // takes that notify, so none is left for a waiter that is not there).
  if (!woken && !detail::take_one(s.sleeping))
    woken = detail::take_one(s.to_wake);
  if (const auto* l = std::get_if<mproc::lock>(&lock_))
    (void)l->acquire();
  else
    std::get<mproc::rlock>(lock_).restore(depth);
  return woken;
}

void condition::notify(unsigned n) const {
  if (s_ == nullptr || !lock_held())
    detail::throw_misuse("cannot notify a condition whose lock this thread does not hold");
  auto& s = *s_;
  auto waiting = s.sleeping.load();
  std::uint32_t k = 0;
  do {
    k = std::min<std::uint32_t>(n, waiting);
    if (k == 0)
      return;
  } while (!s.sleeping.compare_exchange_weak(waiting, waiting - k));
  s.to_wake.fetch_add(k);
  s.seq.fetch_add(1);
  detail::futex_wake(s.seq, static_cast<int>(std::min<std::uint32_t>(k, detail::all_waiters)));
}

void condition::notify_all() const { notify(detail::all_waiters); }

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
