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

[[noreturn]] void fail(const char* what) {
  throw std::runtime_error(std::string{"mproc I/O loop: "} + what + ": " + std::strerror(errno));
}

} // namespace

io_loop::idle_readers io_loop::default_idle_readers() noexcept {
  return more_than_one_cpu() ? idle_readers::sleep : idle_readers::yield;
}

io_loop::io_loop(std::chrono::milliseconds takeover_period, idle_readers idle)
  : takeover_period_(std::max(takeover_period, std::chrono::milliseconds{1})),
    idle_(idle),
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
  std::lock_guard guard{live_loops_mtx()};
  live_loops().insert(this);
}

std::mutex& io_loop::live_loops_mtx() {
  static std::mutex mtx;
  return mtx;
}

std::unordered_set<const io_loop*>& io_loop::live_loops() {
  static std::unordered_set<const io_loop*> loops;
  return loops;
}

io_loop::~io_loop() {
  if (thread_.joinable())
    stop();
  {
    std::lock_guard guard{live_loops_mtx()};
    live_loops().erase(this);
  }
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
    for (auto& fn : loop_only_tasks_)
      batch.push_back(std::move(fn));
    loop_only_tasks_.clear();
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

std::uint64_t io_loop::add(int fd, std::uint32_t events, event_handler handler,
                           bool callers_may_run, poller* polled) {
  auto token = next_token_++;
  epoll_event ev{};
  ev.events = events;
  ev.data.u64 = token;
  if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) != 0)
    fail("epoll_ctl(add)");
  handlers_.emplace(token, registration{std::make_shared<const event_handler>(std::move(handler)),
                                        callers_may_run, polled});
  return token;
}

void io_loop::remove(std::uint64_t token, int fd) {
  epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
  handlers_.erase(token);
  std::erase(awake_readers_, token);
}

void io_loop::look_again(std::uint64_t token) {
  if (std::find(awake_readers_.begin(), awake_readers_.end(), token) == awake_readers_.end())
    awake_readers_.push_back(token);
}

void io_loop::modify(std::uint64_t token, int fd, std::uint32_t events) {
  epoll_event ev{};
  ev.events = events;
  ev.data.u64 = token;
  // ENOENT/EBADF: the link closed concurrently; its reader reports that.
  epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, fd, &ev);
  wanted();
}

void io_loop::wanted() noexcept {
  if (about_to_lead_here())
    return;  // its own lead sees it
  // After the change: a leader whose last wait began before it (and reset the flag) hands
  // the loop back as it leaves it to callers; one whose wait began after it saw the change.
  needs_kick_ = true;
  kick_if_left_to_callers();  // nobody waits in epoll_wait to see it
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
  if (was_empty)
    wake();
  kick_if_left_to_callers();
}

void io_loop::wake() noexcept {
  std::uint64_t one = 1;
  [[maybe_unused]] auto n = ::write(wake_fd_, &one, sizeof one);
}

int io_loop::next_timeout_ms() {
  if (caller_polls_)
    return 0;
  auto due = timers_.empty() ? clock::time_point::max() : timers_.begin()->first.first;
  due = std::min(due, caller_deadline_);  // a caller leading returns at its own deadline
  if (due == clock::time_point::max())
    return -1;
  auto wait = due - clock::now();
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

void io_loop::step() {
  switch (stage_) {
    case stage::wait: {
      auto timeout = next_timeout_ms();
      if (!awake_readers_.empty()) {
        // A write asked of the loop (needs_kick_) is in epoll's hands: ask it first.
        if (batches_looked_ >= max_batches_looked || needs_kick_) {
          wait_events(0);
          if (batch_size_ > 0)
            return;
        }
        if (wait_for_readers(timeout))
          return;
      }
      wait_events(timeout);
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
        for (auto& fn : loop_only_tasks_)  // never on a caller: it hands over before tasks
          batch_tasks_.push_back(std::move(fn));
        loop_only_tasks_.clear();
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
      // A timer that re-arms itself runs once per batch. (No clock read without timers: a
      // round trip on one CPU reads it often enough.)
      timers_due_by_ = timers_.empty() ? clock::time_point::min() : clock::now();
      return;
    case stage::timers:
      if (!run_one_due_timer(timers_due_by_))
        stage_ = stage::wait;
      return;
  }
}

void io_loop::wait_events(int timeout_ms) {
  needs_kick_ = false;  // what comes from here on, this wait sees
  epoll_event events[max_events];
  int n = epoll_wait(epoll_fd_, events, max_events, timeout_ms);
  if (n < 0 && errno != EINTR)
    fail("epoll_wait");
  for (int i = 0; i < n; ++i) {
    batch_tokens_[i] = events[i].data.u64;
    batch_events_[i] = events[i].events;
  }
  batch_size_ = std::max(n, 0);
  batch_next_ = 0;
  stage_ = stage::events;
  batches_looked_ = 0;
  // Readers that went to sleep: their wait ends with the first bytes for one of them.
  if (slept_at_ != clock::time_point{}
      && std::any_of(batch_tokens_, batch_tokens_ + batch_size_,
                     [this](std::uint64_t token) { return poller_of(token) != nullptr; })) {
    arrivals_.observe(clock::now() - slept_at_);
    slept_at_ = {};
  }
}

bool io_loop::wait_for_readers(int timeout_ms) {
  if (take_ready_readers())
    return true;
  if (timeout_ms == 0)
    return false;  // a wait that does not block: the readers stay awake
  if (idle_ == idle_readers::yield && arrivals_.fast_lately()) {
    auto start = clock::now();
    auto deadline = timeout_ms < 0 ? clock::time_point::max()
                                   : start + std::chrono::milliseconds{timeout_ms};
    // The writer runs meanwhile, and the reader looks again when it is done.
    bool got = spin_until([this] { return take_ready_readers(); }, deadline, 1, yield_cpu);
    if (got) {
      arrivals_.observe(clock::now() - start);
      return true;
    }
    arrivals_.timed_out(clock::now() - start);
  }
  std::erase_if(awake_readers_, [this](std::uint64_t token) {
    auto* p = poller_of(token);
    if (p == nullptr)
      return true;
    if (batch_size_ == max_events)
      return false;  // awake still: looked at after this batch
    if (!p->sleep())
      batch_reader(token);  // its bytes came as it was about to sleep
    return true;
  });
  if (batch_size_ == 0) {
    slept_at_ = clock::now();  // how long the readers sleep tells the gauge
    return false;
  }
  stage_ = stage::events;
  ++batches_looked_;
  return true;
}

bool io_loop::take_ready_readers() {
  batch_size_ = 0;
  batch_next_ = 0;
  std::erase_if(awake_readers_, [this](std::uint64_t token) {
    auto* p = poller_of(token);
    if (p == nullptr)
      return true;
    if (!p->ready() || batch_size_ == max_events)
      return false;
    batch_reader(token);
    return true;
  });
  if (batch_size_ == 0)
    return false;
  stage_ = stage::events;
  ++batches_looked_;
  return true;
}

void io_loop::batch_reader(std::uint64_t token) {
  batch_tokens_[batch_size_] = token;
  batch_events_[batch_size_++] = EPOLLIN;
}

io_loop::poller* io_loop::poller_of(std::uint64_t token) const {
  auto h = handlers_.find(token);
  return h == handlers_.end() ? nullptr : h->second.polled;
}

void io_loop::dispatch(std::uint64_t token, std::uint32_t events) {
  if (token == wake_token) {
    std::uint64_t count;
    [[maybe_unused]] auto r = ::read(wake_fd_, &count, sizeof count);
    return;
  }
  // Held: the handler may remove itself (closing a link) while it runs.
  auto h = handlers_.find(token);
  if (h != handlers_.end()) {
    auto handler = h->second.handler;
    (*handler)(events);
  }
}

} // namespace mproc::detail
