#include "mproc/actors/pipe_flusher.hpp"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <mutex>
#include <system_error>
#include <thread>
#include <vector>

#include "mproc/actors/pipe_socket.hpp"
#include "mproc/runtime/log.hpp"
#include "mproc/runtime/node.hpp"

namespace mproc::detail::pipe_flusher {

namespace {

constexpr int look_again_ms = 10;

class flusher {
public:
  // Also wakes the thread for an end it has: the end may have changed (sent away).
  void watch(std::shared_ptr<pipe_socket> end) {
    std::lock_guard guard{mtx_};
    if (std::find(ends_.begin(), ends_.end(), end) == ends_.end())
      ends_.push_back(std::move(end));
    hook_locked();
    if (!thread_.joinable() && !draining_)
      start_locked();
    if (!thread_.joinable() && !draining_) {  // no thread: the ends' next sends ask again
      for (const auto& e : ends_)
        e->unwatch();
      ends_.clear();
      return;
    }
    wake_locked();
  }

  // Node exit: writes what is left (bounded), then ends the thread. Ends that a late send
  // adds meanwhile are dropped with the process.
  void drain() {
    std::thread thread;
    int wake = -1;
    {
      std::unique_lock lock{mtx_};
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
    if (wake >= 0)
      ::close(wake);
    std::lock_guard guard{mtx_};
    for (const auto& e : ends_)  // left unsent: their readers did not read for drain_timeout
      if (auto left = e->unwatched(); left > 0)
        log::warn("a pipe's reader did not read for ", drain_timeout.count(), " s: ", left,
                  " byte(s) sent to it are dropped as this process ends");
    ends_.clear();
    stop_ = false;
    draining_ = false;
  }

private:
  // The node of this process drains the writer when it ends; a later node (tests make
  // several, one after another) gets its own hook.
  void hook_locked() {
    try {
      auto& current = this_node();
      if (current.id() == hooked_)  // ids are random per node; addresses repeat
        return;
      current.at_exit([this] { drain(); });
      hooked_ = current.id();
    } catch (const std::exception&) {
      // No node (pipes are made with one, so not expected): nothing drains at exit.
    }
  }

  // Without a descriptor to be woken by (none left: EMFILE) the thread looks at its ends
  // every few milliseconds instead, or an end added while it slept would never be written.
  // Without a thread, the bytes wait for the next watch(), which tries again.
  void start_locked() {
    wake_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    try {
      thread_ = std::thread{[this, wake = wake_] { run(wake); }};
    } catch (const std::exception& e) {  // system_error, or bad_alloc for its state
      log::warn("a pipe's background writer cannot start (", e.what(),
                "): what the socket did not take waits for the next send");
      close_wake_locked();
    }
  }

  void wake_locked() {
    if (wake_ < 0)
      return;
    std::uint64_t one = 1;
    [[maybe_unused]] auto n = ::write(wake_, &one, sizeof one);
  }

  void close_wake_locked() {
    if (wake_ >= 0)
      ::close(wake_);
    wake_ = -1;
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
      std::vector<std::shared_ptr<pipe_socket>> polled;
      for (auto& e : ends) {
        if (e->awaits_socket()) {
          fds.push_back({e->fd(), POLLOUT, 0});
          polled.push_back(std::move(e));
        } else if (e->flush()) {  // went away: nothing left to write here
          forget(e);
        }  // else lent: settle_lend() wakes this thread
      }
      if (::poll(fds.data(), fds.size(), wake < 0 ? look_again_ms : -1) < 0)
        continue;
      if (fds[0].revents != 0) {
        std::uint64_t count;
        [[maybe_unused]] auto n = ::read(wake, &count, sizeof count);
      }
      for (std::size_t i = 0; i < polled.size(); ++i)
        if (fds[i + 1].revents != 0 && polled[i]->flush())
          forget(polled[i]);
    }
  }

  void forget(const std::shared_ptr<pipe_socket>& end) {
    std::lock_guard guard{mtx_};
    // Checked again under both locks: a send may have queued more since flush() returned,
    // seen the end still here and not asked again.
    if (!end->unwatch_if_idle())
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
  std::uint64_t hooked_ = 0;  // the node whose exit hook drains this writer
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
