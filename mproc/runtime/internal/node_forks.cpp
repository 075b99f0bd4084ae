// The node's fork server (runtime/internal/fork_server.hpp): starting it, handing it starts
// and taking its answers without ever blocking the I/O loop, and falling back to exec when
// it is gone. Part of node_impl; loop thread only.
#include <sys/epoll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

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

// After a run of dying servers, exec for this long, doubled each time a server tried again
// dies too; up to a minute.
constexpr std::chrono::milliseconds first_fork_retry_wait{1'000};
constexpr std::chrono::milliseconds max_fork_retry_wait{60'000};
constexpr const char* fork_retry_wait_env = "MPROC_FORK_SERVER_RETRY_MS";  // tests: shorter

std::chrono::milliseconds fork_retry_wait_to_begin() {
  const char* v = std::getenv(fork_retry_wait_env);
  if (!v)
    return first_fork_retry_wait;
  char* end = nullptr;
  errno = 0;
  long ms = std::strtol(v, &end, 10);
  if (errno != 0 || end == v || *end != '\0' || ms < 1 || ms > max_fork_retry_wait.count()) {
    log::warn("$", fork_retry_wait_env, " is not a number of milliseconds from 1 to ",
              max_fork_retry_wait.count(), ": ignored");
    return first_fork_retry_wait;
  }
  return std::chrono::milliseconds{ms};
}

// A server that refused (it cannot serve in this program), or was still in the program's
// main() when it was declared hung (another would wait as long): no other is tried, ever.
bool another_would_fail_too(const fork_server& s) {
  return s.refused() || (s.hung() && !s.ready());
}

// Exec after a run of dead servers is for a while only when the last one was killed from
// outside: one that crashed or exited may do so every time (the three are its chances).
bool worth_a_later_try(const fork_server& s) {
  return s.killed() && !another_would_fail_too(s);
}

// Not yet reaped, so its pid cannot have been reused.
bool is_our_child(pid_t pid) {
  siginfo_t info{};
  return ::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | WNOWAIT) == 0;
}

} // namespace

bool node_impl::uses_fork_server() const {
  return method_ == start_method::forkserver && options_.executable.empty();
}

bool node_impl::start_fork_server() {
  try {
    fork_server_ = fork_server::start(exec_path_, executable_);
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

bool node_impl::fork_server_worth_restarting() const {
  if (fork_server_->served())
    return true;
  // Killed before its first child, from outside as any process may be: worth another one.
  // Not after a run of servers that died with requests in flight and forked nothing (three;
  // ten of those killed by SIGKILL before they served, node_impl.hpp): then only once
  // fork_server_retry_due().
  if (another_would_fail_too(*fork_server_))
    return false;
  return unserved_fork_servers_ < max_unserved_fork_servers
         && unready_fork_servers_ < max_unready_fork_servers;
}

bool node_impl::fork_server_retry_due() const {
  return !fork_relaunching_ && worth_a_later_try(*fork_server_)
         && std::chrono::steady_clock::now() >= fork_retry_at_;
}

std::string node_impl::fork_server_retry_later() {
  if (!worth_a_later_try(*fork_server_))
    return "processes start by exec";
  auto wait = fork_retry_wait_ ? *fork_retry_wait_ : fork_retry_wait_to_begin();
  fork_retry_at_ = std::chrono::steady_clock::now() + wait;
  fork_retry_wait_ = std::min(2 * wait, max_fork_retry_wait);
  return "processes start by exec; a server is tried again in " + std::to_string(wait.count())
         + " ms";
}

bool node_impl::fork_later(const std::shared_ptr<process_state>& state) {
  if (!options_.executable.empty())  // another program runs the children: exec it
    return false;
  // Started lazily in a child node (or for a process that asks for it in a node that
  // starts its children by exec), and again when it died (killed from outside) unless it
  // cannot serve in this program; after a run of dead ones, once the wait is over.
  if (!fork_server_ || (fork_server_->ended() && fork_server_worth_restarting())) {
    if (!start_fork_server())
      return false;
  } else if (fork_server_->ended() && fork_server_retry_due()) {
    if (!start_fork_server()) {
      fork_server_retry_later();  // a longer wait before the next try
      return false;
    }
    log::debug("starts went by exec for a while: a fork server is tried again");
    // One server: the next death of either kind ends the try.
    unserved_fork_servers_ = max_unserved_fork_servers - 1;
    unready_fork_servers_ = max_unready_fork_servers - 1;
  }
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
    fork_server::sent sent;
    try {
      sent = fork_server_->request(state->name);
    } catch (const std::system_error& e) {
      if (!fork_server_->ended()) {  // nothing to do with the server (out of descriptors)
        launch_by_exec(state);
        continue;
      }
      forks_waiting_.push_front(state);
      log::warn(e.what());
      fork_request_refused_ = true;
      fork_server_ended();
      return;
    }
    auto seq = ++fork_seq_;
    forks_sent_.push_back({state, sent.link_fd, seq, sent.slot});
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
      attach(start.state, adopt_child(*answer, start.link_fd), start_method::forkserver);
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
  bool refused = std::exchange(fork_request_refused_, false);
  if (fork_server_->buried())
    return;
  take_fork_answers();  // what it answered before it ended: those children exist
  loop_.remove(fork_token_, fork_server_->control_fd());
  fork_token_ = 0;
  fork_server_->bury();
  // Dead and reaped: its birth register says which of the starts it had not answered it
  // forked. Read before any start below, which may replace the server.
  std::vector<std::pair<fork_start, pid_t>> forked;
  std::vector<std::shared_ptr<process_state>> unforked;
  for (auto& start : forks_sent_) {
    auto pid = fork_server_->forked(start.slot);
    if (pid && is_our_child(*pid)) {
      forked.emplace_back(std::move(start), *pid);
    } else {
      ::close(start.link_fd);
      unforked.push_back(std::move(start.state));
    }
  }
  forks_sent_.clear();
  // Counted only with requests in flight: one killed while idle says nothing of whether it
  // can serve.
  if (fork_server_->served() || !forked.empty()) {
    unserved_fork_servers_ = unready_fork_servers_ = 0;
    fork_retry_wait_.reset();
  } else if (!unforked.empty() || (refused && !fork_server_->ready())) {
    ++(fork_server_->ready() || !fork_server_->killed() ? unserved_fork_servers_
                                                         : unready_fork_servers_);
  }
  auto next = fork_server_worth_restarting() ? "it is started again for the next process"
                                             : fork_server_retry_later();
  log::warn("the fork server (pid ", fork_server_->pid(), ") is gone: ",
            fork_server_->epitaph(), "; ", next);
  auto waiting = std::move(forks_waiting_);
  forks_waiting_.clear();
  for (auto& [start, pid] : forked) {
    log::warn("the fork server died before answering; ", start.state->name, " (pid ", pid,
              ") was forked and is taken on");
    try {
      attach(start.state, adopt_child(pid, start.link_fd), start_method::forkserver);
    } catch (const std::system_error& e) {
      fail_start(start.state, make_error(errc::spawn_failed, e.what()));
    }
  }
  // A new server if it is worth one; else exec (a retry's wait begins now, not within).
  bool outer = std::exchange(fork_relaunching_, true);  // a server may die again within
  for (auto& state : unforked)
    launch(state);
  for (auto& state : waiting)
    launch(state);
  fork_relaunching_ = outer;
}

void node_impl::drop_fork_starts() {
  for (auto& start : forks_sent_)
    ::close(start.link_fd);
  forks_sent_.clear();
  forks_waiting_.clear();
  fork_server_.reset();
}

} // namespace mproc::detail
