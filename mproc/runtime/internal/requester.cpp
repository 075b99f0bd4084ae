#include "mproc/runtime/internal/requester.hpp"

#include <sched.h>

#include <caf/actor.hpp>
#include <caf/actor_cast.hpp>
#include <caf/error.hpp>
#include <caf/mailbox_element.hpp>
#include <caf/message_id.hpp>
#include <caf/sec.hpp>

#include "mproc/runtime/errors.hpp"
#include "mproc/runtime/internal/link.hpp"

namespace mproc::detail {

namespace {

// now + timeout, saturated: "forever" may be written as a very long timeout.
std::chrono::steady_clock::time_point deadline_after(std::chrono::nanoseconds timeout) {
  auto now = std::chrono::steady_clock::now();
  auto room = std::chrono::steady_clock::time_point::max() - now;
  return timeout >= room ? std::chrono::steady_clock::time_point::max() : now + timeout;
}

} // namespace

namespace {

// Checked once, for the thread that builds the node. A process confined later, or by a CPU
// quota rather than affinity, still stops spinning soon: its replies come late, and the
// average says so.
bool more_than_one_cpu() {
  cpu_set_t set;
  CPU_ZERO(&set);
  return sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 1;
}

} // namespace

requester::requester(caf::actor_config& cfg)
  : caf::monitorable_actor(cfg), may_spin_(more_than_one_cpu()) {}

void requester::enqueue(caf::mailbox_element_ptr what, caf::execution_unit*) {
  if (!what || !what->mid.is_response())
    return;  // nothing but replies is meant for it
  std::lock_guard guard{mtx_};
  auto i = calls_.find(what->mid.request_id().integer_value());
  if (i == calls_.end())
    return;  // the caller gave up waiting
  i->second->reply = what->move_content_to_message();
  i->second->replied = std::chrono::steady_clock::now();
  i->second->ready.store(true, std::memory_order_release);
  i->second->cv.notify_one();
  calls_.erase(i);
}

caf::expected<caf::message> requester::request(const caf::actor& dest, caf::message msg,
                                               std::chrono::nanoseconds timeout) {
  call c;
  std::uint64_t id;
  {
    std::lock_guard guard{mtx_};
    if (stopped_)
      return *stopped_;
    id = ++last_id_;
    calls_.emplace(id, &c);
  }
  auto mid = caf::make_message_id(id);
  auto sent = std::chrono::steady_clock::now();
  auto deadline = deadline_after(timeout);
  try {
    link::write_deadline bounded{deadline};  // a link to a process that stopped reading
    dest->enqueue(caf::make_mailbox_element(ctrl(), mid, {}, std::move(msg)), nullptr);
  } catch (...) {
    std::lock_guard guard{mtx_};
    calls_.erase(id);  // `c` is about to go: no reply may reach it
    throw;
  }
  spin_for(c);
  std::unique_lock lock{mtx_};
  if (!c.cv.wait_until(lock, deadline, [&] { return c.reply.has_value(); })) {
    observe(std::chrono::steady_clock::now() - sent);
    calls_.erase(id);
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(timeout).count();
    return make_error(errc::timeout, "no reply within " + std::to_string(ms) + " ms");
  }
  observe(c.replied - sent);  // how long the answer took, whether this thread slept or not
  auto& reply = *c.reply;
  if (reply.match_elements<caf::error>()) {
    auto& e = reply.get_as<caf::error>(0);
    if (e == caf::sec::request_receiver_down)  // CAF's word for an ended local actor
      return make_error(errc::no_such_actor, "the actor has ended");
    return e;
  }
  return std::move(reply);
}

// Returns when the reply came or spinning no longer pays; the caller then sleeps if need be.
void requester::spin_for(const call& c) {
  auto typical = std::chrono::nanoseconds{typical_latency_ns_.load(std::memory_order_relaxed)};
  if (!may_spin_ || typical > spin_limit)
    return;
  auto until = std::chrono::steady_clock::now() + spin_limit;
  for (unsigned i = 1; !c.ready.load(std::memory_order_acquire); ++i) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();  // lets the other hyperthread run; also eases the exit from the spin
#endif
    if (i % 64 == 0 && std::chrono::steady_clock::now() > until)
      return;
  }
}

// An average over the last ~8 requests, so a few slow replies stop the spinning and a run of
// fast ones starts it again. The time is the reply's own, not including waking this thread.
void requester::observe(std::chrono::nanoseconds latency) {
  auto old = typical_latency_ns_.load(std::memory_order_relaxed);
  typical_latency_ns_.store(old + (latency.count() - old) / 8, std::memory_order_relaxed);
}

bool requester::waiting(std::uint64_t request_id) {
  std::lock_guard guard{mtx_};
  return calls_.count(request_id) != 0;
}

void requester::stop(caf::error why) {
  {
    std::lock_guard guard{mtx_};
    stopped_ = why;
    for (auto& [id, c] : calls_) {
      c->reply = caf::make_message(why);
      c->replied = std::chrono::steady_clock::now();
      c->ready.store(true, std::memory_order_release);
      c->cv.notify_one();
    }
    calls_.clear();
  }
  cleanup(std::move(why), nullptr);
}

} // namespace mproc::detail
