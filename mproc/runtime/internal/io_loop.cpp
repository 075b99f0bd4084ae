#include "mproc/runtime/internal/io_loop.hpp"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>
#include <utility>

namespace mproc::detail {

namespace {

constexpr std::uint64_t wake_token = 0;

// The loop whose released turn this thread runs, if any.
thread_local io_loop* turn_of = nullptr;

[[noreturn]] void fail(const char* what) {
  throw std::runtime_error(std::string{"mproc I/O loop: "} + what + ": " + std::strerror(errno));
}

} // namespace

io_loop::io_loop(std::chrono::milliseconds takeover_period)
  : takeover_period_(std::max(takeover_period, std::chrono::milliseconds{1})),
    read_buffer_(new char[read_buffer_size]) {
  epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
  if (epoll_fd_ < 0)
    fail("epoll_create1");
  wake_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake_fd_ < 0)
    fail("eventfd");
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = wake_token;
  if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, wake_fd_, &ev) != 0)
    fail("epoll_ctl(wake)");
  takeover_fd_ = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC);
  if (takeover_fd_ < 0)
    fail("timerfd_create");
}

io_loop::~io_loop() {
  if (thread_.joinable())
    stop();
  ::close(takeover_fd_);
  ::close(wake_fd_);
  ::close(epoll_fd_);
}

void io_loop::start(work_factory make_work) {
  make_work_ = std::move(make_work);
  thread_ = std::thread{[this] { serve(true); }};
  if (make_work_)
    standby_ = std::thread{[this] { serve(false); }};
}

// The tasks of the batch in progress and every task posted since.
void io_loop::run_tasks() {
  while (batch_task_next_ < batch_tasks_.size()) {
    auto fn = std::move(batch_tasks_[batch_task_next_++]);
    fn();
  }
  batch_tasks_.clear();
  batch_task_next_ = 0;
  std::vector<task> batch;
  {
    std::lock_guard guard{tasks_mtx_};
    batch.swap(tasks_);
  }
  for (auto& fn : batch)
    fn();
}

void io_loop::stop() {
  post([this] { stopping_ = true; });
  if (thread_.joinable())
    thread_.join();
  if (standby_.joinable())
    standby_.join();
}

std::uint64_t io_loop::add(int fd, std::uint32_t events, event_handler handler) {
  auto token = next_token_++;
  epoll_event ev{};
  ev.events = events;
  ev.data.u64 = token;
  if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) != 0)
    fail("epoll_ctl(add)");
  handlers_.emplace(token, std::move(handler));
  return token;
}

void io_loop::remove(std::uint64_t token, int fd) {
  epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
  handlers_.erase(token);
}

void io_loop::modify(std::uint64_t token, int fd, std::uint32_t events) {
  epoll_event ev{};
  ev.events = events;
  ev.data.u64 = token;
  // ENOENT/EBADF: the link closed concurrently; its reader reports that.
  epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, fd, &ev);
}

std::uint64_t io_loop::after(clock::duration delay, task fn) {
  auto id = next_token_++;
  auto due = clock::now() + delay;
  timers_.emplace(std::make_pair(due, id), std::move(fn));
  timer_due_.emplace(id, due);
  return id;
}

void io_loop::cancel(std::uint64_t& timer) {
  if (auto i = timer_due_.find(timer); i != timer_due_.end()) {
    timers_.erase({i->second, timer});
    timer_due_.erase(i);
  }
  timer = 0;
}

void io_loop::post(task fn) {
  bool was_empty;
  {
    std::lock_guard guard{tasks_mtx_};
    was_empty = tasks_.empty();
    tasks_.push_back(std::move(fn));
  }
  // Only the first task of a batch needs to wake the loop.
  if (was_empty) {
    std::uint64_t one = 1;
    [[maybe_unused]] auto n = ::write(wake_fd_, &one, sizeof one);
  }
}

int io_loop::next_timeout_ms() {
  if (timers_.empty())
    return -1;
  auto wait = timers_.begin()->first.first - clock::now();
  auto ms = std::chrono::ceil<std::chrono::milliseconds>(wait).count();
  return ms < 0 ? 0 : static_cast<int>(std::min<long long>(ms, 60'000));
}

// Runs the earliest timer if it was due by `due_by`.
bool io_loop::run_one_due_timer(clock::time_point due_by) {
  if (timers_.empty() || timers_.begin()->first.first > due_by)
    return false;
  auto node = timers_.extract(timers_.begin());
  timer_due_.erase(node.key().second);
  node.mapped()();
  return true;
}

// ---- leadership ------------------------------------------------------------------------
//
// phase_: `leading` while a thread holds the loop, `released` while the last leader runs its
// work (either thread may lead next: the first to move it back to `leading`), `ended` once
// the loop stopped. The leader releases only while the other thread stands by.

void io_loop::serve(bool leading) {
  batch_work* work = nullptr;
  if (make_work_) {
    works_[leading ? 0 : 1] = make_work_();
    work = works_[leading ? 0 : 1].get();
  }
  while (leading || wait_for_takeover()) {
    bool released;
    {
      std::lock_guard lead_guard{lead_mtx_};
      released = lead(work);
    }
    if (!released)
      break;
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

// Runs the loop until this thread has work to do with the loop released (true) or the loop
// ends (false).
bool io_loop::lead(batch_work* work) {
  if (phase_ == phase::ended)
    return false;
  loop_thread_id_ = std::this_thread::get_id();
  while (!stopping_) {
    step();
    if (!work || !work->pending())
      continue;
    if (standing_by_ == 0) {
      work->hand_over();
      continue;
    }
    released_work_ = work;
    ++turns_;
    phase_ = phase::released;
    watch_turn();
    loop_thread_id_ = std::thread::id{};
    return true;
  }
  run_tasks();
  loop_thread_id_ = std::thread::id{};
  phase_ = phase::ended;
  arm_takeover(std::chrono::nanoseconds{1});  // wakes the standby: it ends too
  return false;
}

// Waits until a turn of the leader's work outlasts the takeover period or says it will block
// (true: this thread leads now) or the loop ends (false).
bool io_loop::wait_for_takeover() {
  ++standing_by_;
  bool took_over = false;
  constexpr auto none = ~std::uint64_t{0};
  std::uint64_t running_at_last_tick = none;  // the turn released at the previous tick
  std::uint64_t turns_at_last_tick = none;
  while (phase_ != phase::ended) {
    std::uint64_t expirations;
    if (::read(takeover_fd_, &expirations, sizeof expirations) < 0 && errno != EINTR)
      fail("read(takeover timer)");
    auto turn = turns_.load();
    bool handed = handed_turn_.load() == turn;
    if (phase_ == phase::released && (turn == running_at_last_tick || handed)) {
      auto expected = phase::released;
      if (phase_.compare_exchange_strong(expected, phase::leading)) {
        // Actors queued behind the one that blocks the other thread must not wait for it.
        released_work_.load()->abandon();
        // Nobody stands by now: ticks piling up unread would make the next standby's first
        // read count as a tick and take a fresh turn over early. The next release re-arms.
        arm_takeover({});
        watching_ = false;
        took_over = true;
        break;
      }
    }
    running_at_last_tick = phase_ == phase::released ? turn : none;
    if (turn == turns_at_last_tick && phase_ != phase::released) {
      // Idle for a whole period: stop ticking. A turn released meanwhile arms it again,
      // here or in watch_turn (whichever sees the other's write: no turn goes unwatched).
      arm_takeover({});
      watching_ = false;
      if (phase_ == phase::released)
        watch_turn();
      // A turn that said it will block just before the disarm lost its tick: it gets it now.
      if (phase_ == phase::released && handed_turn_ == turns_)
        arm_takeover(std::chrono::nanoseconds{1}, takeover_period_);
    }
    turns_at_last_tick = turn;
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
  // now, and ticks piling up would take the next turn over too early.
  if (phase_ != phase::released)
    arm_takeover({});
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

void io_loop::step() {
  switch (stage_) {
    case stage::wait: {
      epoll_event events[max_events];
      int n = epoll_wait(epoll_fd_, events, max_events, next_timeout_ms());
      if (n < 0 && errno != EINTR)
        fail("epoll_wait");
      for (int i = 0; i < n; ++i) {
        batch_tokens_[i] = events[i].data.u64;
        batch_events_[i] = events[i].events;
      }
      batch_size_ = std::max(n, 0);
      batch_next_ = 0;
      stage_ = stage::events;
      return;
    }
    case stage::events:
      if (batch_next_ < batch_size_) {
        auto i = batch_next_++;
        dispatch(batch_tokens_[i], batch_events_[i]);
        return;
      }
      stage_ = stage::tasks;
      {
        std::lock_guard guard{tasks_mtx_};
        batch_tasks_.swap(tasks_);
      }
      batch_task_next_ = 0;
      return;
    case stage::tasks:
      if (batch_task_next_ < batch_tasks_.size()) {
        auto fn = std::move(batch_tasks_[batch_task_next_++]);
        fn();
        return;
      }
      batch_tasks_.clear();
      stage_ = stage::timers;
      timers_due_by_ = clock::now();  // a timer that re-arms itself runs once per batch
      return;
    case stage::timers:
      if (!run_one_due_timer(timers_due_by_))
        stage_ = stage::wait;
      return;
  }
}

void io_loop::dispatch(std::uint64_t token, std::uint32_t events) {
  if (token == wake_token) {
    std::uint64_t count;
    [[maybe_unused]] auto r = ::read(wake_fd_, &count, sizeof count);
    return;
  }
  // Copied: the handler may remove itself (closing a link) while it runs.
  auto h = handlers_.find(token);
  if (h != handlers_.end()) {
    auto handler = h->second;
    handler(events);
  }
}

} // namespace mproc::detail
