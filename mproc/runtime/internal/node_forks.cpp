// The node's fork server (runtime/internal/fork_server.hpp): starting it, handing it starts
// and taking its answers without ever blocking the I/O loop, and falling back to exec when
// it is gone. Part of node_impl; loop thread only.
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstring>
#include <optional>
#include <vector>

#include "mproc/runtime/internal/node_impl.hpp"
#include "mproc/runtime/log.hpp"
#include "mproc/serialization/envelope.hpp"
#include "mproc/serialization/frame.hpp"

namespace mproc::detail {

namespace {

// Requests in flight: few, so that the control socket never fills with a healthy server
// (a request carries the environment: a few kilobytes).
constexpr std::size_t max_forks_in_flight = 8;
// A server answers within a fork's time; this long without an answer is a hang. (Until the
// server has reached serve(), its program's main() is given start_timeout.)
constexpr std::chrono::milliseconds max_answer_delay{2'000};

// What the first frame on a lost fork's link says, read without taking it from the link (the
// child's peer reads it as usual once attached).
struct first_frame {
  enum { incomplete, none, hello } kind = none;
  pid_t pid = 0;
};

// The link is non-blocking: nullopt when what is there is not all of `size` bytes yet.
std::optional<std::size_t> peek(int fd, char* buf, std::size_t size) {
  auto n = ::recv(fd, buf, size, MSG_PEEK | MSG_DONTWAIT);
  if (n < 0 && (errno == EAGAIN || errno == EINTR))
    return std::nullopt;
  return n < 0 ? 0 : static_cast<std::size_t>(n);
}

first_frame peek_first_frame(int fd, std::size_t max_frame) {
  char header[wire::frame_header_size];
  auto got = peek(fd, header, sizeof header);
  if (got && *got == 0)
    return {};  // the link ended: no child holds its other end
  if (!got || *got < sizeof header)
    return {first_frame::incomplete};
  std::size_t length = wire::get_frame_length(header);
  if (length > max_frame)
    return {};
  std::vector<char> frame(wire::frame_header_size + length);
  got = peek(fd, frame.data(), frame.size());
  if (!got || *got < frame.size())
    return {first_frame::incomplete};
  wire::decoded_envelope env;
  std::string error;
  if (!wire::decode_envelope({frame.data() + wire::frame_header_size, length}, env, error))
    return {};
  auto* hello = std::get_if<wire::hello_env>(&env.env);
  if (hello == nullptr || hello->pid <= 0)
    return {};
  return {first_frame::hello, static_cast<pid_t>(hello->pid)};
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

bool node_impl::fork_server_worth_restarting() const {
  if (fork_server_->served())
    return true;
  // Killed before its first child, from outside as any process may be: worth another one.
  // Not one that refused (it cannot serve in this program), nor one still in the program's
  // main() when it was declared hung (another would wait as long), nor one after a run of
  // servers that died with requests in flight and forked nothing.
  if (fork_server_->refused() || (fork_server_->hung() && !fork_server_->ready()))
    return false;
  return unserved_fork_servers_ < max_unserved_fork_servers;
}

bool node_impl::fork_later(const std::shared_ptr<process_state>& state) {
  if (!uses_fork_server())
    return false;
  // Started lazily in a child node, and again when it died (killed from outside) unless it
  // cannot serve in this program.
  bool gone = fork_server_ && fork_server_->ended();
  if ((!fork_server_ || (gone && fork_server_worth_restarting())) && !start_fork_server())
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
  auto unanswered = std::move(forks_sent_);
  forks_sent_.clear();
  // Counted only with requests in flight: one killed while idle says nothing of whether it
  // can serve.
  if (fork_server_->served())
    unserved_fork_servers_ = 0;
  else if (!unanswered.empty())
    ++unserved_fork_servers_;
  log::warn("the fork server (pid ", fork_server_->pid(), ") is gone: ",
            fork_server_->epitaph(), "; ",
            fork_server_worth_restarting() ? "it is started again for the next process"
                                           : "processes start by exec",
            unanswered.empty() ? "" : "; the children it may have forked are looked for");
  auto waiting = std::move(forks_waiting_);
  forks_waiting_.clear();
  for (auto& start : unanswered)
    find_lost_fork(std::move(start));
  for (auto& state : waiting)
    launch(state);  // a new server if it is worth one; else exec
}

void node_impl::find_lost_fork(fork_start start) {
  auto seq = start.seq;
  int fd = start.link_fd;
  auto& lost = lost_forks_[seq];
  lost.start = std::move(start);
  try {
    // Edge-triggered: a first frame that has only partly come is looked at again when more
    // comes, not at every turn.
    lost.token = loop_.add(fd, EPOLLIN | EPOLLRDHUP | EPOLLET,
                           [this, seq](std::uint32_t) { look_for_lost_fork(seq, false); });
  } catch (const std::system_error& e) {
    log::warn("cannot watch the link of ", lost.start.state->name, ": ", e.what());
    auto state = lost.start.state;
    lost_forks_.erase(seq);
    ::close(fd);
    launch(state);
    return;
  }
  lost.timer = loop_.after(max_answer_delay, [this, seq] { look_for_lost_fork(seq, true); });
}

void node_impl::look_for_lost_fork(std::uint64_t seq, bool timed_out) {
  auto it = lost_forks_.find(seq);
  if (it == lost_forks_.end())
    return;
  auto& lost = it->second;
  auto first = peek_first_frame(lost.start.link_fd, options_.max_frame);
  if (first.kind == first_frame::incomplete) {
    if (timed_out) {  // the start goes again; the link stays watched, for a late child
      lost.timer = 0;
      lost.relaunched = true;
      launch(lost.start.state);
    }
    return;
  }
  auto done = std::move(lost);
  loop_.remove(done.token, done.start.link_fd);
  loop_.cancel(done.timer);
  lost_forks_.erase(it);
  bool found = first.kind == first_frame::hello && is_our_child(first.pid);
  if (found)
    unserved_fork_servers_ = 0;  // servers can fork here: the next dead one is replaced
  if (found && !done.relaunched) {
    log::warn("the fork server died before answering; ", done.start.state->name, " (pid ",
              first.pid, ") was found by its first frame");
    try {
      attach(done.start.state, adopt_child(first.pid, done.start.link_fd));
    } catch (const std::system_error& e) {
      fail_start(done.start.state, make_error(errc::spawn_failed, e.what()));
    }
    return;
  }
  ::close(done.start.link_fd);
  if (found) {  // too late: its start went again
    ::kill(first.pid, SIGKILL);
    while (::waitpid(first.pid, nullptr, 0) < 0 && errno == EINTR) {
    }
  } else if (!done.relaunched) {
    launch(done.start.state);  // never forked (or it spoke no hello, and ends now)
  }
}

void node_impl::drop_fork_starts() {
  for (auto& start : forks_sent_)
    ::close(start.link_fd);
  forks_sent_.clear();
  forks_waiting_.clear();
  for (auto& [seq, lost] : lost_forks_)
    ::close(lost.start.link_fd);
  lost_forks_.clear();
  fork_server_.reset();
}

} // namespace mproc::detail
