#include "mproc/runtime/internal/requester.hpp"

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <ctime>
#include <thread>

#include <caf/actor.hpp>
#include <caf/actor_cast.hpp>
#include <caf/actor_system.hpp>
#include <caf/attachable.hpp>
#include <caf/error.hpp>
#include <caf/exit_reason.hpp>
#include <caf/mailbox_element.hpp>
#include <caf/message_id.hpp>
#include <caf/sec.hpp>

#include "mproc/runtime/errors.hpp"
#include "mproc/runtime/internal/io_loop.hpp"
#include "mproc/runtime/internal/link.hpp"
#include "mproc/runtime/internal/proxy.hpp"

namespace mproc::detail {

namespace {

// now + timeout, saturated: "forever" may be written as a very long timeout.
std::chrono::steady_clock::time_point deadline_after(std::chrono::steady_clock::time_point now,
                                                     std::chrono::nanoseconds timeout) {
  auto room = std::chrono::steady_clock::time_point::max() - now;
  return timeout >= room ? std::chrono::steady_clock::time_point::max() : now + timeout;
}

// Fails a sleeping call when its receiver ends first, abnormally. CAF 0.17 drops the promise
// of an actor that ends before it answers (killed, an exception, a quit with an error while
// it held the request), telling no one: its caller would wait out the timeout, forever for
// a queue's get().
class receiver_watch final : public caf::attachable {
public:
  static constexpr std::size_t token_type = 0x6d707271;  // beside CAF's 0-3 and down_notice's

  receiver_watch(caf::strong_actor_ptr owner, std::uint64_t request_id, const void* key)
    : owner_(std::move(owner)), request_id_(request_id), key_(key) {}

  void actor_exited(const caf::error& reason, caf::execution_unit*) override {
    static_cast<requester*>(caf::actor_cast<caf::abstract_actor*>(owner_))
      ->receiver_ended(request_id_, reason);
  }

  bool matches(const token& what) override {
    return what.subtype == token_type && what.ptr == key_;
  }

private:
  caf::strong_actor_ptr owner_;  // a watch may fire after its call returned: nothing to find
  std::uint64_t request_id_;
  const void* key_;  // the call's address, unique while it waits
};

} // namespace

requester::requester(caf::actor_config& cfg)
  : caf::monitorable_actor(cfg) {}

void requester::enqueue(caf::mailbox_element_ptr what, caf::execution_unit*) {
  if (!what || !what->mid.is_response())
    return;  // nothing but replies is meant for it
  auto reply = what->move_content_to_message();  // may throw: before the call is ours
  call* c;
  {
    std::lock_guard guard{mtx_};
    auto i = calls_.find(what->mid.request_id().integer_value());
    if (i == calls_.end())
      return;  // the caller gave up waiting
    c = i->second;
    spare_.take(calls_, i);  // from here on the call is ours to answer: its caller waits for it
  }
  answer(*c, std::move(reply));
}

// Outside the lock: a caller woken while the waker still held it would only go to sleep
// again on the lock (two wake-ups per reply instead of one; perf sched showed both).
// The futex wake is made only for a caller that said it sleeps: one still spinning sees the
// word change by itself, and a system call costs a world switch on this VM.
void requester::answer(call& c, caf::message reply) noexcept {
  // A caller that would lead and does not now: the loop thread answering leaves it the loop.
  // Not, with more than one CPU, to one that sleeps: its reply came after its spin, and its
  // next call will not lead.
  auto state = c.ready.load(std::memory_order_acquire);
  if (c.would_lead && state != call::leading
      && (state != call::sleeping || !more_than_one_cpu()) && loop_->in_loop()) {
    loop_->leave_to_callers_after_batch();
    c.loop_left = true;  // before the answer: `c` may be gone after it
  }
  c.reply = std::move(reply);
  c.replied = std::chrono::steady_clock::now();
  // `c` may be gone once the word says answered (its caller saw it while spinning): the
  // wake needs only the address, and a stray wake-up of whatever sleeps there later is
  // harmless, as every futex sleeper checks its word again.
  auto* word = reinterpret_cast<std::uint32_t*>(&c.ready);
  auto before = c.ready.exchange(call::answered, std::memory_order_acq_rel);
  if (before == call::sleeping)
    ::syscall(SYS_futex, word, FUTEX_WAKE_PRIVATE, 1, nullptr, nullptr, 0);
  // A caller leading the loop may wait in epoll_wait (one CPU): a task posted wakes it. (A
  // stray task, should that caller have stopped leading meanwhile, costs a wake-up, no more.)
  else if (before == call::leading && !loop_->in_loop())
    loop_->post([] {});
}

// Sleeps until the reply is there or `deadline` passes; false at the deadline.
bool requester::sleep_for(call& c, std::chrono::steady_clock::time_point deadline) {
  auto* word = reinterpret_cast<const std::uint32_t*>(&c.ready);
  for (;;) {
    auto state = c.ready.load(std::memory_order_acquire);
    if (state == call::answered)
      return true;
    // Told before the sleep, so that the answer knows to wake it; a failed exchange means
    // the answer came meanwhile.
    if (state == call::pending
        && !c.ready.compare_exchange_strong(state, call::sleeping, std::memory_order_acq_rel))
      continue;
    timespec ts{};
    timespec* timeout = nullptr;  // no deadline
    if (deadline != std::chrono::steady_clock::time_point::max()) {
      auto left = std::chrono::duration_cast<std::chrono::nanoseconds>(
        deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0)
        return false;
      ts.tv_sec = static_cast<time_t>(left.count() / 1'000'000'000);
      ts.tv_nsec = static_cast<long>(left.count() % 1'000'000'000);
      timeout = &ts;
    }
    if (::syscall(SYS_futex, word, FUTEX_WAIT_PRIVATE, call::sleeping, timeout, nullptr, 0) == -1
        && errno != EAGAIN && errno != EINTR && errno != ETIMEDOUT)
      std::this_thread::sleep_for(std::chrono::microseconds{100});  // no futex: no busy wait
  }
}

caf::expected<caf::message> requester::request(const caf::actor& dest, caf::message msg,
                                               std::chrono::nanoseconds timeout) {
  call c;
  // A reply read by a loop thread and handed over costs a third thread switch, on one CPU,
  // and with more the loop thread wakes on the CPU of the process that replied, behind it:
  // the caller leads the loop instead (io_loop.hpp), with more than one CPU only while it
  // would spin. Not for a local actor's reply, which the loop does not bring.
  bool remote = dynamic_cast<proxy*>(caf::actor_cast<caf::abstract_actor*>(dest)) != nullptr;
  c.would_lead = loop_ && remote && (!more_than_one_cpu() || latency_.fast_lately());
  std::uint64_t id;
  {
    std::lock_guard guard{mtx_};
    if (stopped_)
      return *stopped_;
    id = ++last_id_;
    spare_.put(calls_, id, &c);
  }
  auto mid = caf::make_message_id(id);
  auto sent = std::chrono::steady_clock::now();
  c.deadline = deadline_after(sent, timeout);
  try {
    link::write_deadline bounded{c.deadline};  // a link to a process that stopped reading
    io_loop::lead_next soon{c.would_lead};
    dest->enqueue(caf::make_mailbox_element(ctrl(), mid, {}, std::move(msg)), nullptr);
  } catch (...) {
    if (!gave_up(id))  // `c` is about to go: a reply being handed over must be done with it
      sleep_for(c, std::chrono::steady_clock::time_point::max());
    throw;
  }
  c.busy_until = std::min(c.deadline, std::chrono::steady_clock::now() + spin_gauge::limit);
  bool in_time = (c.would_lead && lead_until_answered(c, id)) ? c.done()
                                                              : wait_for(c, dest, remote, id);
  if (!in_time && gave_up(id)) {
    latency_.timed_out(std::chrono::steady_clock::now() - sent);
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(timeout).count();
    return make_error(errc::timeout, "no reply within " + std::to_string(ms) + " ms");
  }
  sleep_for(c, std::chrono::steady_clock::time_point::max());  // answered as the time ran out
  if (c.loop_left)
    loop_->left_for_this_thread();
  latency_.observe(c.replied - sent);  // the answer's own time, whether this thread slept or not
  auto& reply = *c.reply;
  if (reply.match_elements<caf::error>()) {
    auto& e = reply.get_as<caf::error>(0);
    if (e == caf::sec::request_receiver_down)  // CAF's word for an ended local actor
      return make_error(errc::no_such_actor, "the actor has ended");
    return e;
  }
  return std::move(reply);
}

// Spins, then sleeps, until the reply came (true) or the deadline passed (false).
bool requester::wait_for(call& c, const caf::actor& dest, bool remote, std::uint64_t id) {
  // The reply may come through this node's loop, or from an actor waiting behind this
  // thread's own turn of it: either way the loop must not wait for this thread.
  io_loop::will_block();
  busy_wait(c, id);
  // A loop thread that answered a call before left the loop to callers, or is about to,
  // and this caller sleeps: without this its reply waited for the standby's tick, 4-8 ms
  // (a call after a slow reply does not lead). Not on one CPU, where every such call leads:
  // there the loop must stay left to callers for the next one.
  bool sleeps = !c.done();
  io_loop::wanting_threads wanting{remote && sleeps && more_than_one_cpu() ? loop_ : nullptr};
  // Watched only by a caller about to sleep: a spinning one is answered within microseconds,
  // and the watch costs the receiver's lock twice. Not a proxy: a watch would make it follow
  // the remote actor's end, and later calls would fail no_such_actor instead of with the
  // process's exit status. (A remote actor that drops a request leaves its caller to the
  // timeout, or to the end of its process.)
  bool watched = sleeps && !remote;
  if (watched) {
    try {
      dest->attach(std::make_unique<receiver_watch>(ctrl(), id, &c));
    } catch (...) {
      watched = false;  // no memory: the timeout still ends the wait
    }
  }
  bool in_time = sleep_for(c, c.deadline);
  if (watched)
    dest->detach(caf::attachable::token{receiver_watch::token_type, &c});
  return in_time;
}

// Leads the loop while the reply comes, if the loop is left to callers. True when that
// settled the wait (answered, or the deadline passed); false when the caller must wait as
// others do (the loop is not left to callers, or it ended meanwhile, or a caller with more
// than one CPU polled it as long as it would spin).
bool requester::lead_until_answered(call& c, std::uint64_t id) {
  auto answered = [&] { return c.done(); };
  auto back_to_pending = [&] {  // fails only once answered
    auto state = call::leading;
    c.ready.compare_exchange_strong(state, call::pending, std::memory_order_acq_rel);
  };
  auto state = call::pending;
  if (!c.ready.compare_exchange_strong(state, call::leading, std::memory_order_acq_rel))
    return true;  // answered already
  bool led;
  try {
    // With one CPU the caller waits in epoll_wait: nothing else would run on it meanwhile.
    // With more, a wait there is a sleep and a wake-up, what the spin is for: it polls.
    bool poll = more_than_one_cpu();
    led = loop_->lead_for(answered, poll ? c.busy_until : c.deadline, poll);
  } catch (...) {
    back_to_pending();
    if (!gave_up(id))  // `c` is about to go: a reply being handed over must be done with it
      sleep_for(c, std::chrono::steady_clock::time_point::max());
    throw;
  }
  back_to_pending();
  if (!led)
    return answered();
  // Another call sleeps: its reply must not wait until this caller comes back.
  if (others_wait())
    io_loop::will_block();
  return answered() || std::chrono::steady_clock::now() >= c.deadline;
}

bool requester::others_wait() {
  std::lock_guard guard{mtx_};
  return !calls_.empty();
}

// While replies come fast, until this one came or busy_until: spins on the call's word,
// and a caller that would lead leads the loop whenever it is left to callers (the loop thread
// that answered the call before leaves it after its batch, maybe after this call was sent).
// The caller then sleeps if need be.
void requester::busy_wait(call& c, std::uint64_t id) {
  if (!latency_.worth_spinning())
    return;
  bool may_lead = c.would_lead && loop_;
  auto lead_now = [&] { return may_lead && loop_->left_to_callers(); };
  while (std::chrono::steady_clock::now() < c.busy_until) {
    if (!spin_until([&] { return c.done() || lead_now(); }, c.busy_until, 64))
      return;
    if (c.done() || lead_until_answered(c, id))
      return;
  }
}

void requester::receiver_ended(std::uint64_t request_id, const caf::error& reason) {
  // An actor that ends normally may have handed the request on (delegated it, or passed its
  // promise to another actor) and the answer still comes: its caller keeps waiting.
  if (!reason || reason == caf::exit_reason::normal)
    return;
  caf::message failure;
  try {
    // mproc's reasons are given as they are; CAF's (kill, an exception) are named in the text.
    if (code_of(reason) != errc::none)
      failure = caf::make_message(reason);
    else
      failure = caf::make_message(make_error(
        errc::no_such_actor, "the actor ended before it answered ("
                               + home_system().render(reason) + ")"));
  } catch (...) {
    return;  // no memory: the caller waits out its timeout, as before
  }
  call* c;
  {
    std::lock_guard guard{mtx_};
    auto i = calls_.find(request_id);
    if (i == calls_.end())
      return;  // answered, or the caller gave up
    c = i->second;
    spare_.take(calls_, i);
  }
  answer(*c, std::move(failure));
}

// False when the call was already taken to be answered: its reply is on the way.
bool requester::gave_up(std::uint64_t request_id) {
  std::lock_guard guard{mtx_};
  return calls_.erase(request_id) != 0;
}

bool requester::waiting(std::uint64_t request_id) {
  std::lock_guard guard{mtx_};
  return calls_.count(request_id) != 0;
}

void requester::stop(caf::error why) {
  auto failure = caf::make_message(why);  // may throw: before the calls are ours
  std::unordered_map<std::uint64_t, call*> calls;
  {
    std::lock_guard guard{mtx_};
    stopped_ = why;
    calls.swap(calls_);
  }
  for (auto& [id, c] : calls)
    answer(*c, failure);
  cleanup(std::move(why), nullptr);
}

} // namespace mproc::detail
