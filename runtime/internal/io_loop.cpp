#include "runtime/internal/io_loop.hpp"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>

namespace mproc::detail {

namespace {

constexpr std::uint64_t wake_token = 0;

[[noreturn]] void fail(const char* what) {
  throw std::runtime_error(std::string{"mproc I/O loop: "} + what + ": " + std::strerror(errno));
}

} // namespace

io_loop::io_loop() : read_buffer_(new char[read_buffer_size]) {
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
}

io_loop::~io_loop() {
  if (thread_.joinable())
    stop();
  ::close(wake_fd_);
  ::close(epoll_fd_);
}

void io_loop::start() {
  thread_ = std::thread{[this] {
    loop_thread_id_ = std::this_thread::get_id();
    run();
  }};
}

void io_loop::stop() {
  post([this] { stopping_ = true; });
  if (thread_.joinable())
    thread_.join();
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

void io_loop::run_due_timers() {
  auto now = clock::now();
  while (!timers_.empty() && timers_.begin()->first.first <= now) {
    auto node = timers_.extract(timers_.begin());
    timer_due_.erase(node.key().second);
    node.mapped()();
  }
}

void io_loop::run_tasks() {
  std::vector<task> batch;
  {
    std::lock_guard guard{tasks_mtx_};
    batch.swap(tasks_);
  }
  for (auto& fn : batch)
    fn();
}

void io_loop::run() {
  constexpr int max_events = 64;
  epoll_event events[max_events];
  while (!stopping_) {
    int n = epoll_wait(epoll_fd_, events, max_events, next_timeout_ms());
    if (n < 0 && errno != EINTR)
      fail("epoll_wait");
    for (int i = 0; i < n; ++i) {
      auto token = events[i].data.u64;
      if (token == wake_token) {
        std::uint64_t count;
        [[maybe_unused]] auto r = ::read(wake_fd_, &count, sizeof count);
        continue;
      }
      // Copied: the handler may remove itself (closing a link) while it runs.
      auto h = handlers_.find(token);
      if (h != handlers_.end()) {
        auto handler = h->second;
        handler(events[i].events);
      }
    }
    run_tasks();
    run_due_timers();
  }
  run_tasks();
}

} // namespace mproc::detail
