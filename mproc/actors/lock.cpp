#include "mproc/actors/lock.hpp"

#include <pthread.h>

#include <new>

#include "mproc/actors/process_mutex.hpp"
#include "mproc/actors/segment.hpp"
#include "mproc/actors/shared_block.hpp"
#include "mproc/runtime/message_types.hpp"

namespace mproc {

namespace detail {

struct lock_state {
  process_mutex m;
  // The thread that acquired it, for a condition's check only: another thread of the holding
  // process may release it, as in Python.
  std::atomic<std::uint64_t> thread{0};
};

struct rlock_state {
  process_mutex m;
  std::atomic<std::uint64_t> thread{0};  // the holding thread within the holding process
  std::atomic<std::uint32_t> depth{0};   // written by the holding thread only
};

static_assert(sizeof(rlock_state) <= rlock_size);

rlock rlock_at(std::shared_ptr<segment> seg, void* at, bool fresh) {
  auto* s = fresh ? new (at) rlock_state{} : static_cast<rlock_state*>(at);
  return rlock{std::move(seg), s};
}

namespace {

// The holding thread, told apart from every thread of every other process: pthread_self()
// alone repeats across processes (siblings forked by one server share their layout), and a
// dead holder's value stays in the word until the next holder writes its own. Mixed with the
// process key (splitmix64's finaliser), a stale value cannot match a thread of the new owner.
std::uint64_t this_thread_key() {
  auto self = static_cast<std::uint64_t>(::pthread_self());
  auto x = this_process_key() ^ (self * 0x9e3779b97f4a7c15u);
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9u;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebu;
  return (x ^ (x >> 31)) | 1;  // never 0, the value of "no thread"
}

acquired outcome(taken t) { return {t != taken::no, t == taken::owner_died}; }

} // namespace
} // namespace detail

namespace {
[[maybe_unused]] const bool registered =
    detail::register_message_type<lock>() && detail::register_message_type<rlock>();
}

using detail::segment;
using mproc::detail::segment_kind;

// ---- lock ------------------------------------------------------------------------------

lock::lock() {
  seg_ = segment::create(segment_kind::lock, sizeof(mproc::detail::lock_state));
  s_ = new (seg_->payload()) mproc::detail::lock_state{};
}

lock::lock(std::shared_ptr<segment> seg, mproc::detail::lock_state* s)
    : seg_{std::move(seg)}, s_{s} {}

// A moved-from handle has no segment (its raw pointer is stale): checked on every use.
detail::lock_state& lock::state() const {
  if (!seg_)
    detail::throw_misuse("an empty lock handle (default-made for decoding, or moved from)");
  return *s_;
}

acquired lock::acquire(bool block, wait_timeout timeout) const {
  auto& s = state();
  auto got = detail::outcome(detail::take(s.m, detail::deadline::from(block, timeout)));
  if (got)
    s.thread.store(detail::this_thread_key());
  return got;
}

void lock::release() const {
  auto& s = state();
  if (detail::held_by_me(s.m))  // not another process's holder's (a release of its lock)
    s.thread.store(0);
  if (!detail::give_back(s.m))
    detail::throw_misuse("lock released too many times (it is not held)");
}

bool lock::locked() const { return seg_ && s_->m.owner.load() != 0; }

bool lock::held_by_this_thread() const {
  return seg_ && detail::held_by_me(s_->m) && s_->thread.load() == detail::this_thread_key();
}

// ---- rlock -----------------------------------------------------------------------------

rlock::rlock() {
  seg_ = segment::create(segment_kind::rlock, sizeof(mproc::detail::rlock_state));
  s_ = new (seg_->payload()) mproc::detail::rlock_state{};
}

rlock::rlock(std::shared_ptr<segment> seg, mproc::detail::rlock_state* s)
    : seg_{std::move(seg)}, s_{s} {}

detail::rlock_state& rlock::state() const {
  if (!seg_)
    detail::throw_misuse("an empty rlock handle (default-made for decoding, or moved from)");
  return *s_;
}

bool rlock::held_by_this_thread() const {
  return seg_ && detail::held_by_me(s_->m) && s_->thread.load() == detail::this_thread_key();
}

acquired rlock::acquire(bool block, wait_timeout timeout) const {
  auto& s = state();
  if (held_by_this_thread()) {
    s.depth.fetch_add(1);
    return {true, false};
  }
  auto got = detail::outcome(detail::take(s.m, detail::deadline::from(block, timeout)));
  if (got) {
    s.thread.store(detail::this_thread_key());
    s.depth.store(1);
  }
  return got;
}

void rlock::release() const {
  (void)state();
  if (!held_by_this_thread())
    detail::throw_misuse("cannot release an rlock this thread does not hold");
  if (s_->depth.fetch_sub(1) == 1) {
    s_->thread.store(0);
    detail::give_back(s_->m);
  }
}

unsigned rlock::release_all() const {
  auto depth = s_->depth.exchange(0);
  s_->thread.store(0);
  detail::give_back(s_->m);
  return depth;
}

void rlock::restore(unsigned depth) const {
  (void)detail::take(s_->m, detail::deadline::after(std::nullopt));
  s_->thread.store(detail::this_thread_key());
  s_->depth.store(depth);
}

bool rlock::locked() const { return seg_ && s_->m.owner.load() != 0; }

} // namespace mproc

namespace mproc::wire {

lock codec<lock>::blank() { return lock{nullptr, nullptr}; }
rlock codec<rlock>::blank() { return rlock{nullptr, nullptr}; }

void codec<lock>::encode(packer& pk, const lock& l, codec_state& st) {
  mproc::detail::encode_segment(pk, l.seg_.get(), st, "lock");
}

bool codec<lock>::decode(const msgpack::object& o, lock& out, codec_state& st) {
  auto seg = mproc::detail::decode_segment(o, st, mproc::detail::segment_kind::lock, 0,
                                    sizeof(mproc::detail::lock_state), "lock");
  if (!seg)
    return false;
  auto* s = &mproc::detail::payload_as<mproc::detail::lock_state>(*seg);
  out = lock{std::move(seg), s};
  return true;
}

void codec<rlock>::encode(packer& pk, const rlock& l, codec_state& st) {
  mproc::detail::encode_segment(pk, l.seg_.get(), st, "rlock");
}

bool codec<rlock>::decode(const msgpack::object& o, rlock& out, codec_state& st) {
  using mproc::detail::segment_kind;
  if (auto kind = mproc::detail::kind_on_wire(o);
      kind == segment_kind::value || kind == segment_kind::array) {  // a Value's get_lock()
    std::optional<rlock> in_block;
    if (!mproc::detail::decode_block_lock(o, st,
                                          kind == segment_kind::value
                                            ? mproc::detail::shared_block::kind::value
                                            : mproc::detail::shared_block::kind::array,
                                          in_block))
      return false;
    out = std::move(*in_block);
    return true;
  }
  auto seg = mproc::detail::decode_segment(o, st, mproc::detail::segment_kind::rlock, 0,
                                    sizeof(mproc::detail::rlock_state), "rlock");
  if (!seg)
    return false;
  auto* s = &mproc::detail::payload_as<mproc::detail::rlock_state>(*seg);
  out = rlock{std::move(seg), s};
  return true;
}

} // namespace mproc::wire
