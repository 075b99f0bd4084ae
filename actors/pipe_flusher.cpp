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
    if (!thread_.joinable())
      start_locked();
    std::uint64_t one = 1;
    [[maybe_unused]] auto n = ::write(wake_, &one, sizeof one);
  }

  // Node exit: writes what is left (bounded), then ends the thread.
  void drain() {
    {
      std::unique_lock lock{mtx_};
      if (!thread_.joinable())
        return;
      idle_.wait_for(lock, drain_timeout, [&] { return ends_.empty(); });
      stop_ = true;
      std::uint64_t one = 1;
      [[maybe_unused]] auto n = ::write(wake_, &one, sizeof one);
    }
    thread_.join();
    std::lock_guard guard{mtx_};
    ends_.clear();  // left unsent: their readers did not read for drain_timeout
    ::close(wake_);
    thread_ = {};
    stop_ = false;
    hook_added_ = false;  // a later node of this process (tests make several) adds its own
  }

private:
  void start_locked() {
    wake_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    thread_ = std::thread{[this] { run(); }};
    if (!hook_added_) {
      hook_added_ = true;
      this_node().at_exit([this] { drain(); });
    }
  }

  void run() {
    std::vector<pollfd> fds;
    for (;;) {
      std::vector<std::shared_ptr<pipe_socket>> ends;
      {
        std::lock_guard guard{mtx_};
        if (stop_)
          return;
        ends = ends_;
      }
      fds.assign(1, pollfd{wake_, POLLIN, 0});
      for (const auto& e : ends)
        fds.push_back({e->fd(), POLLOUT, 0});
      if (::poll(fds.data(), fds.size(), -1) < 0)
        continue;
      if (fds[0].revents != 0) {
        std::uint64_t count;
        [[maybe_unused]] auto n = ::read(wake_, &count, sizeof count);
      }
      for (std::size_t i = 0; i < ends.size(); ++i)
        if (fds[i + 1].revents != 0 && ends[i]->flush())
          forget(ends[i]);
    }
  }

  void forget(const std::shared_ptr<pipe_socket>& end) {
    std::lock_guard guard{mtx_};
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
