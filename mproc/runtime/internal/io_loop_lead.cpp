// Who holds the loop: its two threads taking turns (leader/follower), and callers that lead
// it while they wait for a reply (io_loop.hpp says why).
//
// phase_: `leading` while a thread holds the loop, `released` while the last leader runs its
// work or the loop is left to callers (either loop thread, or a caller, may lead next: the
// first to move it back to `leading`), `ended` once the loop stopped. The loop is released
// only while a thread stands by to take it back.
#include "mproc/runtime/internal/io_loop.hpp"

#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>
#include <utility>

namespace mproc::detail {

namespace {

// The loop whose released turn this thread runs, if any.
thread_local io_loop* turn_of = nullptr;
// The loop this thread, a caller, left to callers, and the turn that was.
thread_local io_loop* left_by = nullptr;
thread_local std::uint64_t left_turn = 0;
// Left by a loop thread for this thread (left_for_this_thread), at left_turn or the next.
thread_local bool left_for_me = false;
thread_local bool leads_next = false;  // see io_loop::lead_next
// The loop this thread, a caller, leads now.
thread_local io_loop* leading_caller = nullptr;

} // namespace

void io_loop::serve(bool leading) {
  batch_work* work = nullptr;
  if (make_work_) {
    works_[leading ? 0 : 1] = make_work_();
    work = works_[leading ? 0 : 1].get();
  }
  while (leading || wait_for_takeover()) {
    outcome got;
    {
      std::lock_guard lead_guard{lead_mtx_};
      got = lead(work);
    }
    if (got == outcome::ended)
      break;
    if (got == outcome::left_to_callers) {
      leading = false;  // this thread stands by now, beside the other
      continue;
    }
    run_turn(*work);
    auto expected = phase::released;
    // Lost to the standby (it took the loop over meanwhile): this thread stands by now.
    leading = phase_.compare_exchange_strong(expected, phase::leading);
  }
  if (work) {
    work->hand_over();
    work->retire();
  }
}

void io_loop::run_turn(batch_work& work) {
  struct turn_scope {
    explicit turn_scope(io_loop* loop) { turn_of = loop; }
    ~turn_scope() { turn_of = nullptr; }
  } scope{this};
  work.run();
}

// Runs the loop until this thread has work to do with the loop released, or leaves it to
// callers, or the loop ends.
io_loop::outcome io_loop::lead(batch_work* work) {
  if (phase_ == phase::ended)
    return outcome::ended;
  loop_thread_id_ = std::this_thread::get_id();
  while (!stopping_) {
    step();
    bool leave = leave_after_batch_ && stage_ == stage::wait;
    if (leave)
      leave_after_batch_ = false;
    if (work && work->pending()) {
      if (standing_by_ == 0) {
        work->hand_over();
        continue;
      }
      release(work);
      return outcome::released;
    }
    if (leave && standing_by_ > 0) {
      release(&callers_turn_);
      // Asked of the loop since its wait: not for a caller to find (a task), nor to wait
      // for one (a write).
      if (asked_meanwhile())
        hand_over_turn();
      return outcome::left_to_callers;
    }
  }
  run_tasks();
  loop_thread_id_ = std::thread::id{};
  phase_ = phase::ended;
  arm_takeover(std::chrono::nanoseconds{1});  // wakes the standby: it ends too
  return outcome::ended;
}

// The leader lets go of the loop for a turn of `work` (the callers' own code, for
// callers_turn_); the standby watches it.
void io_loop::release(batch_work* work) {
  released_work_ = work;
  ++turns_;
  loop_thread_id_ = std::thread::id{};
  phase_ = phase::released;
  watch_turn();
}

bool io_loop::lead_for(const std::function<bool()>& done, clock::time_point deadline,
                       bool poll) {
  if (!left_to_callers())
    return false;
  auto expected = phase::released;
  if (!phase_.compare_exchange_strong(expected, phase::leading))
    return false;
  forget_left();
  // A loop thread's turn released since the check: what waits behind it goes to other
  // threads, as when the standby takes a turn over.
  if (auto* work = released_work_.load(); work != &callers_turn_)
    work->abandon();
  std::lock_guard lead_guard{lead_mtx_};
  loop_thread_id_ = std::this_thread::get_id();
  caller_deadline_ = deadline;
  caller_polls_ = poll;
  leading_caller = this;
  bool handed = false;
  try {
    // Until the answer or the deadline, at the end of a batch; the clock is read before a
    // wait only (the other steps do not block). What only the loop's own threads may do
    // (caller_may_step) ends the lead at once.
    for (;;) {
      if (stopping_ || needs_kick_) {
        handed = true;
        break;
      }
      if (stage_ == stage::wait) {
        if (done() || (deadline != clock::time_point::max() && clock::now() >= deadline))
          break;
      } else if (!caller_may_step()) {
        handed = true;
        break;
      }
      step();
    }
  } catch (...) {
    leave_to_callers(false);
    throw;
  }
  leave_to_callers(!handed && done());
  return true;
}

// Whether the next step is one a caller may take: a link's reading event, or the end of a
// batch with no task and no timer due. (Handled by a loop thread instead: tasks and timers,
// children's ends, links closing, and whatever else runs the user's callbacks.)
bool io_loop::caller_may_step() {
  switch (stage_) {
    case stage::wait:
      return true;
    case stage::events: {
      if (batch_next_ == batch_size_) {
        std::lock_guard guard{tasks_mtx_};
        return tasks_.empty() && loop_only_tasks_.empty();
      }
      auto h = handlers_.find(batch_tokens_[batch_next_]);
      return h != handlers_.end() && h->second.callers_may_run
             && (batch_events_[batch_next_] & (EPOLLHUP | EPOLLRDHUP | EPOLLERR)) == 0;
    }
    case stage::tasks:
      return batch_task_next_ >= batch_tasks_.size();
    case stage::timers:
      return timers_.empty() || timers_.begin()->first.first > timers_due_by_;
  }
  return false;
}

// A caller stops leading. `again`: it may well lead again soon; else the loop goes back to
// its own threads now.
void io_loop::leave_to_callers(bool again) noexcept {
  leading_caller = nullptr;
  caller_deadline_ = clock::time_point::max();
  caller_polls_ = false;
  leave_after_batch_ = false;  // for another caller answered meanwhile: it is left now
  release(&callers_turn_);
  auto turn = turns_.load();
  // Asked of the loop since this caller's last wait (a task posted, a write left to the
  // loop, a user's callback held back): a loop thread takes it now.
  if (asked_meanwhile())
    again = false;
  if (!again) {
    hand_over_turn();
    return;
  }
  std::lock_guard guard{live_loops_mtx()};
  left_by = this;
  left_turn = turn;
  left_for_me = false;
}

io_loop::lead_next::lead_next(bool soon) noexcept : previous_(leads_next) {
  leads_next = soon;
  // What a loop thread left to this thread was for the time between its calls; a request
  // that will not lead hands it back as it waits (will_block).
  if (soon && left_for_me)
    left_by = nullptr;
}

io_loop::lead_next::~lead_next() {
  leads_next = previous_;
}

void io_loop::left_for_this_thread() noexcept {
  std::lock_guard guard{live_loops_mtx()};
  left_by = this;
  // The loop thread leaves at the end of its batch, maybe not yet: this turn or the next.
  left_turn = turns_.load();
  left_for_me = true;
}

io_loop::wanting_threads::wanting_threads(io_loop* loop) noexcept : loop_(loop) {
  if (!loop_)
    return;
  // Counted before the check: a leader about to leave the loop to callers reads the count
  // after it released the loop (asked_meanwhile); one of the two sees the other.
  ++loop_->wanting_;
  loop_->kick_if_left_to_callers();
}

io_loop::wanting_threads::~wanting_threads() {
  if (loop_)
    --loop_->wanting_;
}

bool io_loop::left_to_callers() const noexcept {
  // Not once handed back: the standby is about to take it, and a caller leading it now
  // would only hand it back again at once.
  return phase_ == phase::released && released_work_.load() == &callers_turn_
         && handed_turn_.load() != turns_.load();
}

// Something the loop must see came (a task posted, a write asked for) while the loop is left
// to callers: take it back now. One that came while a leader was about to leave it to
// callers is that leader's to see (asked_meanwhile). Not for the caller about to lead it: it
// sees this itself.
void io_loop::kick_if_left_to_callers() noexcept {
  if (!about_to_lead_here() && left_to_callers())
    hand_over_turn();
}

bool io_loop::about_to_lead_here() const noexcept {
  return leads_next && left_by == this;
}

// Asked of the loop since its last wait, by a leader that just left it to callers: a write
// (needs_kick_, set after its epoll_ctl and read here after phase_ was written; the writer
// reads phase_ after setting it: one of the two sees the other) or a task (in the list: the
// same with the list's lock); or a thread sleeps until the loop's threads bring it
// something (wanting_threads).
bool io_loop::asked_meanwhile() {
  if (needs_kick_.exchange(false) || wanting_ > 0)
    return true;
  std::lock_guard guard{tasks_mtx_};
  return !tasks_.empty() || !loop_only_tasks_.empty();
}

void io_loop::on_loop_thread(task fn) {
  std::vector<task> held;
  {
    std::lock_guard guard{tasks_mtx_};
    if (leading_caller == this) {
      loop_only_tasks_.push_back(std::move(fn));
      needs_kick_ = true;  // the caller hands the loop over after this step
      wake();              // and the loop thread that takes it runs this
      return;
    }
    if (in_loop())
      held.swap(loop_only_tasks_);  // callbacks held back before this one run first
  }
  for (auto& h : held)
    h();
  fn();
}

// The loop this thread left to callers is no longer its to give back.
void io_loop::forget_left() noexcept {
  std::lock_guard guard{live_loops_mtx()};
  left_by = nullptr;
}

// Waits until a turn of the leader's work outlasts the takeover period or says it will block
// (true: this thread leads now) or the loop ends (false).
bool io_loop::wait_for_takeover() {
  ++standing_by_;
  bool took_over = false;
  constexpr auto none = ~std::uint64_t{0};
  while (phase_ != phase::ended) {
    std::uint64_t expirations;
    if (::read(takeover_fd_, &expirations, sizeof expirations) < 0 && errno != EINTR)
      throw std::runtime_error(std::string{"mproc I/O loop: read(takeover timer): "}
                               + std::strerror(errno));
    auto turn = turns_.load();
    bool handed = handed_turn_.load() == turn;
    if (phase_ == phase::released && (turn == released_at_last_tick_ || handed)) {
      auto expected = phase::released;
      if (phase_.compare_exchange_strong(expected, phase::leading)) {
        // Actors queued behind the one that blocks the other thread must not wait for it.
        released_work_.load()->abandon();
        // Nobody stands by now: ticks piling up unread would make the next standby's first
        // read count as a tick and take a fresh turn over early. The next release re-arms.
        arm_takeover({});
        watching_ = false;
        released_at_last_tick_ = none;
        took_over = true;
        break;
      }
    }
    released_at_last_tick_ = phase_ == phase::released ? turn : none;
    if (turn == turns_at_last_tick_ && phase_ != phase::released) {
      // Idle for a whole period: stop ticking.
      stop_ticking();
    }
    turns_at_last_tick_ = turn;
  }
  --standing_by_;
  return took_over;
}

// The leader released a turn: the timer must tick.
void io_loop::watch_turn() {
  if (!watching_.exchange(true))
    arm_takeover(takeover_period_, takeover_period_);
}

void io_loop::will_block() noexcept {
  // Once a turn: after the first call the loop belongs, or is about to, to the other thread.
  if (auto* loop = std::exchange(turn_of, nullptr))
    loop->hand_over_turn();
  // A caller that left the loop to callers and is not about to lead it soon. (The loop may
  // be gone with its node: only a live one is touched, and it cannot end meanwhile.)
  if (left_by == nullptr)
    return;
  std::lock_guard guard{live_loops_mtx()};
  auto* loop = std::exchange(left_by, nullptr);
  if (live_loops().count(loop) == 0)
    return;
  if (!left_for_me) {
    if (loop->turns_ == left_turn)
      loop->hand_over_turn();
    return;
  }
  if (loop->turns_ - left_turn > 1)
    return;  // taken back since, and left again for someone else
  // Left by a loop thread, maybe not yet (it finishes its batch first): the flag makes it
  // hand the loop back as it leaves, as for a write (modify).
  loop->needs_kick_ = true;
  loop->kick_if_left_to_callers();
}

// The tick comes now. (Should the standby's idle disarm come between, it sees the turn
// handed over and arms the tick again.) While this thread runs its turn the other one cannot
// release a turn of its own (nobody would stand by), so turns_ is this turn's number.
void io_loop::hand_over_turn() noexcept {
  if (phase_ != phase::released)
    return;
  handed_turn_ = turns_.load();
  arm_takeover(std::chrono::nanoseconds{1}, takeover_period_);
  // A tick took the turn over meanwhile and disarmed the timer: nobody stands by to read it
  // now, and ticks piling up would take the next turn over too early. (This thread may have
  // been held up for long, by a thread woken on its CPU: a turn released since must still
  // be watched. Leaving watching_ set here lost it, and the loop stayed left to callers.)
  if (phase_ != phase::released)
    stop_ticking();
}

// Disarms the timer. A turn released meanwhile arms it again, here or in watch_turn
// (whichever sees the other's write: no turn goes unwatched).
void io_loop::stop_ticking() noexcept {
  arm_takeover({});
  // The loop ended meanwhile: its last leader's wake for the standby may be what this just
  // disarmed (a thread kicking the loop as it stops).
  if (phase_ == phase::ended) {
    arm_takeover(std::chrono::nanoseconds{1});
    return;
  }
  watching_ = false;
  if (phase_ == phase::released)
    watch_turn();
  // A turn that said it will block just before the disarm lost its tick: it gets it now.
  if (phase_ == phase::released && handed_turn_ == turns_)
    arm_takeover(std::chrono::nanoseconds{1}, takeover_period_);
}

// Zero `after` disarms.
void io_loop::arm_takeover(std::chrono::nanoseconds after, std::chrono::nanoseconds period) {
  auto to_timespec = [](std::chrono::nanoseconds d) {
    timespec t{};
    t.tv_sec = static_cast<time_t>(d.count() / 1'000'000'000);
    t.tv_nsec = static_cast<long>(d.count() % 1'000'000'000);
    return t;
  };
  itimerspec spec{};
  spec.it_value = to_timespec(after);
  spec.it_interval = to_timespec(period);
  timerfd_settime(takeover_fd_, 0, &spec, nullptr);
}

} // namespace mproc::detail
