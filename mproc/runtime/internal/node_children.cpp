// The node's child processes: starting them (by exec here, or by the fork server in
// node_forks.cpp), settling their end with the exit
// status, and joining or stopping them when the node ends. Part of node_impl.
#include <sys/epoll.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <future>

#include "mproc/runtime/internal/node_impl.hpp"
#include "mproc/runtime/log.hpp"

namespace mproc::detail {

namespace {

// A child's closed link is settled with its exit status, which normally follows within
// microseconds — but on a loaded machine the dying process can be preempted between closing
// its files and becoming a zombie for hundreds of milliseconds. A child that closes its link
// and lives on past this grace is broken: it is killed and settled as link_lost.
constexpr auto exit_status_grace = std::chrono::seconds{5};

} // namespace

// ---- child processes -------------------------------------------------------------------

std::string node_impl::next_process_name() {
  std::lock_guard guard{mtx_};
  return "Process-" + std::to_string(++process_counter_);
}

// Children that ended go, but for the latest `keep` (introspection shows how they ended),
// with their handles' last references: a program that starts a process per task keeps a
// bounded number of states (and sentinel descriptors), not one per process it started.
// The states let go are returned, to be destroyed once mtx_ is released (a state may hold
// the last reference to a proxy, whose end takes its peer's lock).
std::vector<std::shared_ptr<process_state>> node_impl::forget_ended_children_locked(
  std::size_t keep) {
  std::vector<std::shared_ptr<process_state>> gone;
  std::size_t ended = 0;
  for (auto i = children_.size(); i-- > 0;) {
    bool over;
    {
      std::lock_guard g{children_[i]->mtx};
      over = children_[i]->state == process_state::phase::ended;
    }
    if (over && ++ended > keep) {
      gone.push_back(std::move(children_[i]));
      children_.erase(children_.begin() + static_cast<std::ptrdiff_t>(i));
    }
  }
  return gone;
}

std::vector<std::shared_ptr<process_state>> node_impl::live_children() {
  std::vector<std::shared_ptr<process_state>> gone;
  std::lock_guard guard{mtx_};
  gone = forget_ended_children_locked(0);
  return children_;
}

bool node_impl::admit(const std::shared_ptr<process_state>& state) {
  std::vector<std::shared_ptr<process_state>> gone;  // destroyed after the lock
  std::lock_guard guard{mtx_};
  gone = forget_ended_children_locked(ended_children_kept);
  if (!shutting_down_) {
    children_.push_back(state);  // with the check: finish_children() sees every child
    return true;
  }
  std::lock_guard state_guard{state->mtx};
  state->start_error = make_error(errc::node_shutdown, "the node is shutting down");
  state->state = process_state::phase::ended;
  return false;
}

void node_impl::start_settled(const std::shared_ptr<process_state>& state) {
  std::function<void(caf::error)> callback;
  caf::error error;
  {
    std::lock_guard guard{state->mtx};
    callback = std::move(state->on_started);
    state->on_started = nullptr;
    error = state->start_error;
    // Sent or never to be: as Python's start(), let go of the arguments, so that what they
    // hold (a lock's memory, a queue's handle) does not live as long as the handle.
    state->args = caf::message{};
  }
  if (callback)  // a user's callback: on a loop thread, not a caller leading the loop
    loop_.on_loop_thread(
      [callback = std::move(callback), error = std::move(error)]() mutable { callback(error); });
}

void node_impl::start_process_async(const std::shared_ptr<process_state>& state) {
  if (!admit(state)) {
    start_settled(state);
    return;
  }
  loop_.post([this, state] { launch(state); });
}

void node_impl::start_process(const std::shared_ptr<process_state>& state) {
  if (loop_.in_loop()) {
    // It would wait for the loop it blocks. (Monitor callbacks of remote actors run here.)
    std::lock_guard guard{state->mtx};
    state->start_error = make_error(errc::spawn_failed,
                                    "process::start() cannot run on mproc's I/O thread; use "
                                    "the asynchronous start(done) there");
    state->state = process_state::phase::ended;
    return;
  }
  if (!admit(state))
    return;
  loop_.post([this, state] { launch(state); });
  io_loop::will_block();
  std::unique_lock lock{state->mtx};
  // The loop's start timer settles every start; this bound only guards against a loop that
  // stopped (a bug) so that start() cannot hang.
  auto backstop = options_.start_timeout + std::chrono::seconds{5};
  if (!state->changed.wait_for(lock, backstop, [&] { return state->start_settled(); })) {
    state->start_error = make_error(errc::spawn_failed,
                                    "not started within start_timeout and 5 s more");
    state->signal_locked(SIGKILL);
  }
}

void node_impl::launch(const std::shared_ptr<process_state>& state) {
  if (state->method.value_or(method_) == start_method::forkserver && fork_later(state))
    return;
  launch_by_exec(state);
}

void node_impl::launch_by_exec(const std::shared_ptr<process_state>& state) {
  try {
    attach(state, spawn_child(exec_path_, executable_, state->name), start_method::exec);
  } catch (const std::system_error& e) {
    fail_start(state, make_error(errc::spawn_failed, e.what()));
  }
}

bool node_impl::unwanted(const process_state& state) {
  {
    std::lock_guard guard{state.mtx};
    if (state.start_error)  // start() gave up waiting
      return true;
  }
  std::lock_guard guard{mtx_};
  return shutting_down_ && state.daemon;  // nobody would stop it
}

void node_impl::attach(const std::shared_ptr<process_state>& state, const spawned_child& c,
                       start_method how) {
  if (unwanted(*state)) {  // its start, late (a fork server's), was given up meanwhile
    fail_start(state, make_error(errc::node_shutdown, "the node is shutting down"));
    ::syscall(SYS_pidfd_send_signal, c.pidfd, SIGKILL, nullptr, 0);
    while (::waitpid(c.pid, nullptr, 0) < 0 && errno == EINTR) {  // killed: at once
    }
    ::close(c.pidfd);
    ::close(c.link_fd);
    std::lock_guard guard{state->mtx};
    state->state = process_state::phase::ended;  // never ran, as far as its handle knows
    state->changed.notify_all();
    return;
  }
  auto l = std::make_shared<link>(loop_, c.link_fd, options_.max_frame, options_.max_link_queue);
  auto p = std::make_shared<peer>(*this, l, peer::role::child, c.pid);
  {
    std::lock_guard guard{state->mtx};
    state->pid = c.pid;
    state->pidfd = c.pidfd;
    state->started_by = how;
    state->link = p;
    // kill() or terminate() while it had no pid: its end is settled as any other
    if (auto sig = std::exchange(state->pending_signal, 0))
      state->signal_locked(sig);
  }
  {
    std::lock_guard guard{mtx_};
    peers_.insert(p);
    child_of_peer_[p.get()] = state;
  }
  state->pidfd_token = loop_.add(c.pidfd, EPOLLIN, [this, state](std::uint32_t) {
    on_child_exited(state);
  });
  log::info("started process ", state->name, " (pid ", c.pid, ") running '",
            state->actor_name, "'");
  p->open([this](peer& closed, const std::string& why) {
    on_peer_closed(closed.shared_from_this(), why);
  });
  if (options_.shared_memory_links)
    loop_.post([l = std::weak_ptr<link>(l)] {
      if (auto opened = l.lock())
        opened->offer_ring();
    });
  state->start_timer = loop_.after(options_.start_timeout, [this, state] {
    state->start_timer = 0;
    fail_start(state, make_error(errc::spawn_failed,
                                 "process " + std::to_string(state->pid)
                                   + " did not start its actor within "
                                   + std::to_string(options_.start_timeout.count()) + " ms"));
  });
  p->spawn(state->actor_name, state->args, true,
           [this, state](caf::expected<caf::actor> r) { on_child_started(state, std::move(r)); });
}

void node_impl::on_child_started(const std::shared_ptr<process_state>& state,
                                 caf::expected<caf::actor> r) {
  if (!r) {
    fail_start(state, r.error());
    return;
  }
  loop_.cancel(state->start_timer);
  {
    std::lock_guard guard{state->mtx};
    if (state->start_settled())
      return;
    state->actor = std::move(*r);
    if (state->state == process_state::phase::starting)
      state->state = process_state::phase::running;
    state->changed.notify_all();
  }
  start_settled(state);
}

void node_impl::fail_start(const std::shared_ptr<process_state>& state, caf::error why) {
  loop_.cancel(state->start_timer);
  {
    std::lock_guard guard{state->mtx};
    if (state->pid == 0) {  // never ran: nothing will be reaped, join() must not wait for it
      state->state = process_state::phase::ended;
      state->changed.notify_all();
    }
    if (state->start_settled())  // start() gave up on it already (its backstop)
      return;
    state->start_error = std::move(why);
    state->signal_locked(SIGKILL);  // a child that did not start is of no use
    state->changed.notify_all();
  }
  start_settled(state);
}

void node_impl::on_child_exited(const std::shared_ptr<process_state>& state) {
  auto code = reap(state->pid);
  if (!code)
    return;
  std::shared_ptr<peer> open_link;
  std::string closed_why;
  {
    std::lock_guard guard{state->mtx};
    loop_.remove(state->pidfd_token, state->pidfd);
    ::close(state->pidfd);
    state->pidfd = -1;
    state->exitcode = code;
    open_link = state->link;
    closed_why = state->link_closed_why;
  }
  log::info("process ", state->name, " (pid ", state->pid, ") ended: ", describe_exit(*code));
  // Settle the link before join() returns, so that afterwards every proxy of the process is
  // dead with its exit status. What the process wrote before dying is delivered first.
  if (!closed_why.empty())
    settle_child_link(state, closed_why);
  else if (open_link)
    open_link->link().drain_and_close("the process ended");  // on_peer_closed settles
  std::vector<std::function<void(int)>> callbacks;
  {
    std::lock_guard guard{state->mtx};
    state->state = process_state::phase::ended;
    state->changed.notify_all();
    callbacks.swap(state->on_exit);
  }
  loop_.on_loop_thread([callbacks = std::move(callbacks), code = *code] {
    for (auto& fn : callbacks)  // users' callbacks: not on a caller leading the loop
      fn(code);
  });
}

void node_impl::finish_children() {
  auto children = live_children();
  // Python joins non-daemon children at exit and terminates daemon ones.
  for (auto& c : children) {
    std::unique_lock lock{c->mtx};
    if (!c->daemon)
      c->changed.wait(lock, [&] { return c->state == process_state::phase::ended; });
  }
  for (auto& c : children) {
    std::lock_guard lock{c->mtx};
    if (c->daemon && c->link)
      c->link->send_shutdown("the parent node is exiting");
  }
  auto deadline = std::chrono::steady_clock::now() + options_.daemon_grace;
  for (auto& c : children) {
    std::unique_lock lock{c->mtx};
    if (!c->changed.wait_until(lock, deadline,
                               [&] { return c->state == process_state::phase::ended; })) {
      c->signal_locked(SIGKILL);
      c->changed.wait(lock, [&] { return c->state == process_state::phase::ended; });
    }
  }
}

void node_impl::close_peers() {
  std::unordered_map<std::uint64_t, std::function<void(caf::error)>> connecting;
  {
    std::lock_guard guard{mtx_};
    connecting.swap(connecting_);
  }
  for (auto& [ticket, settle] : connecting)
    settle(make_error(errc::node_shutdown, "connect: the node is shutting down"));
  std::promise<void> done;
  loop_.post([this, &done] {
    std::set<std::shared_ptr<peer>> peers;
    {
      std::lock_guard guard{mtx_};
      peers = peers_;
    }
    for (auto& p : peers) {
      // fail() first: closing settles the peer too, and only the first reason counts.
      p->fail(make_error(errc::node_shutdown, "the node is shutting down"));
      p->close("the node is shutting down");
    }
    done.set_value();
  });
  done.get_future().wait();
}

// Loop thread: the link to a child closed. Its end is settled with the exit status, which
// normally follows at once.
void node_impl::on_child_link_closed(const std::shared_ptr<process_state>& child,
                                     const std::shared_ptr<peer>& p, const std::string& why) {
  std::unique_lock lock{child->mtx};
  if (child->exitcode) {
    lock.unlock();
    settle_child_link(child, why);
    return;
  }
  if (!p->link().closed_by_peer()) {
    // Cut off by this node (it broke the protocol): the violation is the story, and a child
    // without a link is of no use.
    child->signal_locked(SIGKILL);
    lock.unlock();
    settle_child_link(child, why);
    return;
  }
  // The exit status follows the closed socket almost at once; wait for it, briefly.
  child->link_closed_why = why;
  child->settle_timer = loop_.after(exit_status_grace, [this, child, why] {
    {
      std::lock_guard guard{child->mtx};
      child->settle_timer = 0;
      child->signal_locked(SIGKILL);
    }
    settle_child_link(child, why);
  });
}

void node_impl::settle_child_link(const std::shared_ptr<process_state>& state,
                                  const std::string& why) {
  std::shared_ptr<peer> p;
  caf::error reason;
  {
    std::lock_guard guard{state->mtx};
    p.swap(state->link);
    if (!p)
      return;
    loop_.cancel(state->settle_timer);
    reason = state->exitcode ? make_exit_error(*state->exitcode)
                             : make_error(errc::link_lost, "process " + std::to_string(state->pid)
                                                             + ": " + why);
  }
  {
    std::lock_guard guard{mtx_};
    child_of_peer_.erase(p.get());
  }
  p->fail(reason);
}

} // namespace mproc::detail
