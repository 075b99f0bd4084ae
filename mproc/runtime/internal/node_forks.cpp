// The node's fork server (runtime/internal/fork_server.hpp): starting it, handing it starts
// and taking its answers without ever blocking the I/O loop, and falling back to exec when
// it is gone. Part of node_impl; loop thread only.
#include <sys/epoll.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>

#include "mproc/runtime/internal/node_impl.hpp"
#include "mproc/runtime/log.hpp"

namespace mproc::detail {

namespace {

// Requests in flight: few, so that the control socket never fills with a healthy server
// (a request carries the environment: a few kilobytes).
constexpr std::size_t max_forks_in_flight = 8;
// A server answers within a fork's time; this long without an answer is a hang. (Until the
// server has reached serve(), its program's main() is given start_timeout.)
constexpr std::chrono::milliseconds max_answer_delay{2'000};

} // namespace

bool node_impl::uses_fork_server() const {
  return method_ == start_method::forkserver && options_.executable.empty();
}

bool node_impl::start_fork_server() {
  try {
    fork_server_ = fork_server::start(executable_);
  } catch (const std::system_error& e) {
    log::warn("no fork server (", e.what(), "): children start by exec");
    return false;
  }
  fork_server_started_ = std::chrono::steady_clock::now();
  log::debug("fork server started (pid ", fork_server_->pid(), ")");
  fork_token_ = loop_.add(fork_server_->control_fd(), EPOLLIN, [this](std::uint32_t) {
    on_fork_answers();
  });
  return true;
}

bool node_impl::fork_later(const std::shared_ptr<process_state>& state) {
  if (!uses_fork_server())
    return false;
  // Started lazily in a child node, and again when it died after serving (killed from
  // outside); left dead when it never served (it cannot, in this program).
  bool gone = fork_server_ && fork_server_->ended();
  if ((!fork_server_ || (gone && fork_server_->served())) && !start_fork_server())
    return false;
  if (fork_server_->ended())
    return false;
  forks_waiting_.push_back(state);
  send_fork_requests();
  return true;
}

void node_impl::send_fork_requests() {
  while (!forks_waiting_.empty() && forks_sent_.size() < max_forks_in_flight
         && !fork_server_->ended()) {
    auto state = forks_waiting_.front();
    forks_waiting_.pop_front();
    int link_fd;
    try {
      link_fd = fork_server_->request(state->name);
    } catch (const std::system_error& e) {
      if (!fork_server_->ended()) {  // nothing to do with the server (out of descriptors)
        launch_by_exec(state);
        continue;
      }
      forks_waiting_.push_front(state);
      log::warn(e.what());
      fork_server_ended();
      return;
    }
    auto seq = ++fork_seq_;
    forks_sent_.push_back({state, link_fd, seq});
    watch_fork_answer(seq);
  }
}

void node_impl::watch_fork_answer(std::uint64_t seq) {
  loop_.after(max_answer_delay, [this, seq] {
    auto waiting = [&] { return !forks_sent_.empty() && forks_sent_.front().seq <= seq; };
    if (!waiting())
      return;
    take_fork_answers();  // an answer may have come in the same turn as this timer
    if (!waiting())
      return after_fork_answers();
    // A server still in its program's main() may take a while to reach serve().
    auto starting_until = fork_server_started_ + options_.start_timeout;
    if (!fork_server_->ready() && std::chrono::steady_clock::now() < starting_until)
      return watch_fork_answer(seq);
    fork_server_->hang();
    fork_server_ended();
  });
}

void node_impl::take_fork_answers() {
  while (auto answer = fork_server_->answer()) {
    if (forks_sent_.empty()) {  // an answer to nothing: a broken server
      fork_server_->hang();
      return;
    }
    auto start = std::move(forks_sent_.front());
    forks_sent_.pop_front();
    if (*answer <= 0) {  // it could not fork: exec has its own chance, and its own error
      ::close(start.link_fd);
      log::warn("fork server: cannot start ", start.state->name, ": ", std::strerror(-*answer),
                "; trying exec");
      launch_by_exec(start.state);
      continue;
    }
    try {
      attach(start.state, adopt_child(*answer, start.link_fd));
    } catch (const std::system_error& e) {
      fail_start(start.state, make_error(errc::spawn_failed, e.what()));
    }
  }
}

void node_impl::after_fork_answers() {
  if (fork_server_->ended())
    fork_server_ended();
  else
    send_fork_requests();
}

void node_impl::on_fork_answers() {
  take_fork_answers();
  after_fork_answers();
}

void node_impl::fork_server_ended() {
  if (fork_server_->buried())
    return;
  take_fork_answers();  // what it answered before it ended: those children exist
  loop_.remove(fork_token_, fork_server_->control_fd());
  fork_token_ = 0;
  fork_server_->bury();
  log::warn("the fork server (pid ", fork_server_->pid(), ") is gone: ",
            fork_server_->epitaph(), "; ",
            fork_server_->served() ? "it is started again for the next process"
                                   : "processes start by exec");
  // A child forked just before the end may exist: its link is closed here, so it ends.
  std::deque<std::shared_ptr<process_state>> orphans;
  for (auto& start : forks_sent_) {
    ::close(start.link_fd);
    orphans.push_back(start.state);
  }
  forks_sent_.clear();
  orphans.insert(orphans.end(), forks_waiting_.begin(), forks_waiting_.end());
  forks_waiting_.clear();
  for (auto& state : orphans)
    launch(state);  // a new server, if this one had served; else exec
}

void node_impl::drop_fork_starts() {
  for (auto& start : forks_sent_)
    ::close(start.link_fd);
  forks_sent_.clear();
  forks_waiting_.clear();
  fork_server_.reset();
}

} // namespace mproc::detail
