// The node's I/O thread: one epoll set over every link, child pidfd and timer of a node.
//
// Handlers run on the loop thread. Registrations are addressed by token, not pointer, so an
// event still queued in the current epoll batch for a handler removed moments before is
// dropped instead of calling freed memory.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

namespace mproc::detail {

class io_loop {
public:
  using clock = std::chrono::steady_clock;
  using event_handler = std::function<void(std::uint32_t epoll_events)>;
  using task = std::function<void()>;

  io_loop();
  ~io_loop();
  io_loop(const io_loop&) = delete;
  io_loop& operator=(const io_loop&) = delete;

  void start();
  // Runs the tasks already posted, then ends the thread. Not from the loop thread.
  void stop();

  // Loop thread only.
  std::uint64_t add(int fd, std::uint32_t events, event_handler handler);
  void remove(std::uint64_t token, int fd);
  std::uint64_t after(clock::duration delay, task fn);
  // Cancels the timer `timer` names, if any, and sets it to 0 (no timer).
  void cancel(std::uint64_t& timer);

  // Any thread: epoll_ctl is thread-safe, so writers can ask for EPOLLOUT themselves.
  void modify(std::uint64_t token, int fd, std::uint32_t events);
  // Any thread: runs `fn` on the loop thread, in posting order.
  void post(task fn);

  bool in_loop() const { return std::this_thread::get_id() == loop_thread_id_.load(); }

  // One read buffer for every link: only the loop thread reads.
  char* read_buffer() { return read_buffer_.get(); }
  static constexpr std::size_t read_buffer_size = 256 * 1024;

private:
  void run();
  int next_timeout_ms();
  void run_due_timers();
  void run_tasks();

  int epoll_fd_ = -1;
  int wake_fd_ = -1;
  std::thread thread_;
  std::atomic<std::thread::id> loop_thread_id_{};
  std::atomic<bool> stopping_{false};
  std::uint64_t next_token_ = 1;  // 0 is the wake-up eventfd

  std::mutex tasks_mtx_;
  std::vector<task> tasks_;

  std::unordered_map<std::uint64_t, event_handler> handlers_;
  std::map<std::pair<clock::time_point, std::uint64_t>, task> timers_;
  std::unordered_map<std::uint64_t, clock::time_point> timer_due_;
  // Not zero-filled: untouched pages cost nothing, and a child process that never receives
  // much never faults them in (page faults are most of a process's start-up here).
  std::unique_ptr<char[]> read_buffer_;
};

} // namespace mproc::detail
