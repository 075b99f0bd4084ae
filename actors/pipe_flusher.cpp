#include "actors/pipe_flusher.hpp"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#include "actors/pipe_socket.hpp"
#include "runtime/node.hpp"

namespace mproc::detail::pipe_flusher {

namespace {

class flusher {
public:
  void watch(std::shared_ptr<pipe_socket> end) {
    std::lock_guard guard{mtx_};
    for (const auto& e : ends_)
      if (e == end)
        return;
    ends_.push_back(std::move(end));
    if (!thread_.joinable() && !draining_)
      start_locked();
    wake_locked();
  }

  // Node exit: writes what is left (bounded), then ends the thread. Ends that a late send
  // adds meanwhile are dropped with the process.
  void drain() {
    std::thread thread;
    int wake = -1;
    {
      std::unique_lock lock{mtx_};
      hook_added_ = false;  // a later node of this process (tests make several) adds its own
      if (!thread_.joinable())
        return;
      idle_.wait_for(lock, drain_timeout, [&] { return ends_.empty(); });
      stop_ = true;
      draining_ = true;
      wake_locked();
      thread = std::move(thread_);
      wake = std::exchange(wake_, -1);
    }
    thread.join();
    ::close(wake);
    std::lock_guard guard{mtx_};
    ends_.clear();  // left unsent: their readers did not read for drain_timeout
    stop_ = false;
    draining_ = false;
  }

private:
  void start_locked() {
    if (!hook_added_) {
      try {
        this_node().at_exit([this] { drain(); });
        hook_added_ = true;
      } catch (const std::exception&) {
        // No node (pipes are made with one, so not expected): nothing drains at exit.
      }
    }
    wake_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    thread_ = std::thread{[this, wake = wake_] { run(wake); }};
  }

  void wake_locked() {
    std::uint64_t one = 1;
    [[maybe_unused]] auto n = ::write(wake_, &one, sizeof one);
  }

  void run(int wake) {
    std::vector<pollfd> fds;
    for (;;) {
      std::vector<std::shared_ptr<pipe_socket>> ends;
      {
        std::lock_guard guard{mtx_};
        if (stop_)
          return;
        ends = ends_;
      }
      fds.assign(1, pollfd{wake, POLLIN, 0});
      for (const auto& e : ends)
        fds.push_back({e->fd(), POLLOUT, 0});
      if (::poll(fds.data(), fds.size(), -1) < 0)
        continue;
      if (fds[0].revents != 0) {
        std::uint64_t count;
        [[maybe_unused]] auto n = ::read(wake, &count, sizeof count);
      }
      for (std::size_t i = 0; i < ends.size(); ++i)
        if (fds[i + 1].revents != 0 && ends[i]->flush())
          forget(ends[i]);
    }
  }

  void forget(const std::shared_ptr<pipe_socket>& end) {
    std::lock_guard guard{mtx_};
    // Checked again under both locks: a send may have queued more since flush() returned,
    // seen the end still here and not asked again.
    if (!end->idle())
      return;
    std::erase(ends_, end);
    if (ends_.empty())
      idle_.notify_all();
  }

  std::mutex mtx_;
  std::condition_variable idle_;
  std::vector<std::shared_ptr<pipe_socket>> ends_;
  std::thread thread_;
  int wake_ = -1;
  bool stop_ = false;
  bool draining_ = false;
  bool hook_added_ = false;
};

// Never destroyed: a joinable thread member must not meet static destruction, and the
// at_exit hook has joined it by then.
flusher& instance() {
  static auto* f = new flusher;
  return *f;
}

} // namespace

void watch(std::shared_ptr<pipe_socket> end) {
  instance().watch(std::move(end));
}

} // namespace mproc::detail::pipe_flusher
