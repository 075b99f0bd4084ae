#include "runtime/internal/node_impl.hpp"

#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <future>
#include <stdexcept>

#include <caf/actor_cast.hpp>
#include <caf/blocking_actor.hpp>
#include <caf/make_actor.hpp>
#include <caf/send.hpp>

#include "runtime/actor_registry.hpp"
#include "runtime/log.hpp"
#include "runtime/internal/message_codec.hpp"
#include "runtime/internal/proxy.hpp"
#include "serialization/type_registry.hpp"

namespace mproc::detail {

namespace {

std::uint64_t random_node_id() {
  std::uint64_t id = 0;
  while (id == 0)
    if (::getrandom(&id, sizeof id, 0) != sizeof id)
      id = (static_cast<std::uint64_t>(::getpid()) << 32) ^ static_cast<std::uint64_t>(::time(nullptr));
  return id;
}

std::string render_mproc_error(std::uint8_t code, caf::atom_value, const caf::message& ctx) {
  auto text = "mproc:" + to_string(static_cast<errc>(code));
  if (!ctx.empty() && ctx.match_element<std::string>(0))
    text += ": " + ctx.get_as<std::string>(0);
  return text;
}

// A child's closed link is settled with its exit status, which normally follows within
// microseconds — but on a loaded machine the dying process can be preempted between closing
// its files and becoming a zombie for hundreds of milliseconds. A child that closes its link
// and lives on past this grace is broken: it is killed and settled as link_lost.
constexpr auto exit_status_grace = std::chrono::seconds{5};

void check(bool ok, const std::string& what) {
  if (!ok)
    throw std::invalid_argument("mproc::node_options::" + what);
}

void validate(const node_options& o) {
  check(!o.name.empty(), "name must not be empty");
  check(o.max_frame >= wire::min_max_frame,
        "max_frame must be at least " + std::to_string(wire::min_max_frame) + " bytes (got "
          + std::to_string(o.max_frame) + ")");
  check(o.child_threads >= 1, "child_threads must be at least 1");
  check(o.max_link_queue >= 64 * 1024, "max_link_queue must be at least 65536 bytes (got "
                                         + std::to_string(o.max_link_queue) + ")");
  check(o.threads <= 1024, "threads must be at most 1024 (0 means cpu_count())");
  check(o.start_timeout.count() > 0, "start_timeout must be positive");
  check(o.daemon_grace.count() >= 0, "daemon_grace must not be negative");
  check(o.heartbeat_interval.count() > 0, "heartbeat_interval must be positive");
  check(o.heartbeat_timeout > o.heartbeat_interval,
        "heartbeat_timeout must be longer than heartbeat_interval");
}

} // namespace

node_impl::node_impl(node_options options, std::optional<child_args> child)
  : options_(std::move(options)), child_(std::move(child)) {
  validate(options_);
  register_builtin_types();
  wire::types().freeze();
  name_ = child_ ? child_->name : options_.name;
  set_current_process_name(name_);
  log::set_process_name(name_);
  id_ = random_node_id();
  executable_ = options_.executable.empty() ? self_executable() : options_.executable;
  auto threads = child_ ? options_.child_threads
                        : (options_.threads != 0 ? options_.threads : cpu_count());
  config_.set("scheduler.max-threads", threads);
  // The work-stealing default polls when idle; sharing sleeps (CAF-NOTES, "Scheduler").
  config_.set("scheduler.policy", caf::atom("sharing"));
  config_.add_error_category(caf::atom("mproc"), render_mproc_error);
  system_ = std::make_unique<caf::actor_system>(config_);
  caf::actor_config requester_config;
  requester_handle_ = caf::make_actor<requester, caf::actor>(
    system_->next_actor_id(), system_->node(), system_.get(), requester_config);
  requester_ = static_cast<requester*>(caf::actor_cast<caf::abstract_actor*>(requester_handle_));
  loop_.start();
}

node_impl::~node_impl() {
  shutdown();
}

void node_impl::shutdown() {
  {
    std::lock_guard guard{mtx_};
    if (shutting_down_)
      return;
    shutting_down_ = true;
  }
  run_exit_hooks();
  finish_children();
  close_peers();
  loop_.post([this] { listeners_.clear(); });  // stop() runs it before the loop ends
  loop_.stop();
  // What the node kept alive on its own (actors spawned for peers, named actors) would keep
  // ~actor_system waiting forever.
  std::unordered_map<std::uint64_t, caf::actor> kept;
  std::unordered_map<std::string, caf::actor> named;
  {
    std::lock_guard guard{mtx_};
    kept.swap(kept_alive_);
    named.swap(names_);
  }
  for (auto& [id, a] : kept)
    caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
  kept.clear();
  named.clear();
  {
    std::lock_guard guard{exports_mtx_};
    exports_.clear();
  }
  requester_->stop(make_error(errc::node_shutdown, "the node is shutting down"));
  requester_ = nullptr;
  requester_handle_ = nullptr;
  system_.reset();  // waits for the remaining actors, with the node still intact
}

// ---- exported actors -------------------------------------------------------------------

wire::actor_ref node_impl::export_actor(const caf::strong_actor_ptr& actor) {
  std::lock_guard guard{exports_mtx_};
  auto& slot = exports_[actor->id()];
  if (slot.get() != actor.get())
    slot = caf::weak_actor_ptr{actor.get()};
  // Dead entries go in sweeps, amortised over the exports that grow the table.
  if (exports_.size() >= exports_swept_at_) {
    std::erase_if(exports_, [](const auto& kv) { return expired(kv.second); });
    exports_swept_at_ = std::max<std::size_t>(64, 2 * exports_.size());
  }
  return {id_, actor->id()};
}

caf::strong_actor_ptr node_impl::local_actor(std::uint64_t id) {
  std::lock_guard guard{exports_mtx_};
  auto i = exports_.find(id);
  return i == exports_.end() ? nullptr : i->second.lock();
}

void node_impl::keep_alive(const caf::actor& a) {
  if (!a || dynamic_cast<proxy*>(caf::actor_cast<caf::abstract_actor*>(a)) != nullptr)
    return;  // a proxy's actor is kept (or not) by its own process
  auto id = a.id();
  {
    std::lock_guard guard{mtx_};
    if (!kept_alive_.emplace(id, a).second)
      return;
  }
  // Released from the loop: dropping the last reference inside the actor's own cleanup is
  // not something to do to CAF.
  a->attach_functor([this, id] {
    loop_.post([this, id] {
      std::lock_guard guard{mtx_};
      kept_alive_.erase(id);
    });
  });
}

void node_impl::at_exit(std::function<void()> fn) {
  std::lock_guard guard{mtx_};
  exit_hooks_.push_back(std::move(fn));
}

void node_impl::run_exit_hooks() {
  std::vector<std::function<void()>> hooks;
  {
    std::lock_guard guard{mtx_};
    hooks.swap(exit_hooks_);
  }
  for (auto& fn : hooks) {
    try {
      fn();
    } catch (const std::exception& e) {
      log::warn("an exit hook failed: ", e.what());
    }
  }
}

// ---- serving peers ---------------------------------------------------------------------

caf::expected<caf::actor> node_impl::spawn_for(peer&, const std::string& actor,
                                               const caf::message& args, bool main) {
  auto result = spawn_registered(*system_, actor, args);
  if (!result) {
    if (main && child_)
      loop_.post([this] { request_exit(1); });  // nothing to run: the child is done
    return result;
  }
  keep_alive(*result);
  if (main && child_) {
    (*result)->attach_functor([this](const caf::error& reason) {
      // Through the loop, so that frames it is writing (the spawned answer, down messages)
      // go out before the process does.
      loop_.post([this, code = reason ? 1 : 0] { request_exit(code); });
    });
  }
  return result;
}

void node_impl::on_peer_closed(const std::shared_ptr<peer>& p, const std::string& why) {
  std::shared_ptr<process_state> child;
  {
    std::lock_guard guard{mtx_};
    peers_.erase(p);
    if (auto i = child_of_peer_.find(p.get()); i != child_of_peer_.end())
      child = i->second;
  }
  if (p->kind() == peer::role::parent) {
    log::debug("parent link closed: ", why);
    p->fail(make_error(errc::link_lost, "the parent process is gone: " + why));
    request_exit(1);
    return;
  }
  if (!child) {
    p->fail(make_error(errc::link_lost, why));
    if (p->kind() == peer::role::remote) {
      std::lock_guard guard{mtx_};
      --remote_peers_;
      remote_changed_.notify_all();
    }
    return;
  }
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

void node_impl::on_shutdown_requested(peer& from, const std::string& why) {
  if (from.kind() == peer::role::parent) {
    log::debug("the parent asked this process to stop: ", why);
    request_exit(0);
  }
}

// ---- named actors ----------------------------------------------------------------------

caf::error node_impl::register_name(const std::string& name, const caf::actor& actor) {
  if (name.empty() || !actor)
    return make_error(errc::bad_arguments, "register_name needs a name and an actor");
  {
    std::lock_guard guard{mtx_};
    auto [i, added] = names_.emplace(name, actor);
    if (!added)
      return make_error(errc::bad_arguments, "the name '" + name + "' is taken in this process");
  }
  // Unregistered through the loop: not inside the actor's own cleanup.
  actor->attach_functor([this, name, id = actor.id()] {
    loop_.post([this, name, id] {
      std::lock_guard guard{mtx_};
      if (auto i = names_.find(name); i != names_.end() && i->second.id() == id)
        names_.erase(i);
    });
  });
  return {};
}

void node_impl::lookup(const std::string& name, peer::lookup_callback done) {
  std::shared_ptr<peer> parent;
  caf::actor found;
  {
    std::lock_guard guard{mtx_};
    if (auto i = names_.find(name); i != names_.end())
      found = i->second;
    parent = parent_;
  }
  if (found) {  // answered outside the lock: a peer's callback writes to its link
    done(std::move(found));
    return;
  }
  if (!parent) {
    done(caf::expected<caf::actor>{make_error(
      errc::no_such_actor, "no actor is registered as '" + name + "' in this node or above it")});
    return;
  }
  parent->lookup(name, std::move(done));
}

// ---- blocking requests -----------------------------------------------------------------

caf::expected<caf::message> node_impl::request(const caf::actor& dest, caf::message msg,
                                               std::chrono::nanoseconds timeout) {
  if (!dest)
    return make_error(errc::no_such_actor, "request to an invalid actor handle");
  if (loop_.in_loop())  // the reply would need the loop this call blocks
    return make_error(errc::protocol_error, "node::request() cannot run on mproc's I/O thread");
  return requester_->request(dest, std::move(msg), timeout);
}

// ---- child processes -------------------------------------------------------------------

std::string node_impl::next_process_name() {
  std::lock_guard guard{mtx_};
  return "Process-" + std::to_string(++process_counter_);
}

std::vector<std::shared_ptr<process_state>> node_impl::live_children() {
  std::lock_guard guard{mtx_};
  std::erase_if(children_, [](const auto& s) {
    std::lock_guard g{s->mtx};
    return s->state == process_state::phase::ended;
  });
  return children_;
}

bool node_impl::admit(const std::shared_ptr<process_state>& state) {
  std::lock_guard guard{mtx_};
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
  }
  if (callback)
    callback(std::move(error));
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
  std::unique_lock lock{state->mtx};
  // The loop's start timer settles every start; this bound only guards against a loop that
  // stopped (a bug) so that start() cannot hang.
  auto backstop = options_.start_timeout + std::chrono::seconds{5};
  if (!state->changed.wait_for(lock, backstop, [&] { return state->start_settled(); })) {
    state->start_error = make_error(errc::spawn_failed, "no answer from the I/O loop");
    state->signal_locked(SIGKILL);
  }
}

void node_impl::launch(const std::shared_ptr<process_state>& state) {
  spawned_child c;
  try {
    c = spawn_child(executable_, executable_, state->name);
  } catch (const std::system_error& e) {
    fail_start(state, make_error(errc::spawn_failed, e.what()));
    return;
  }
  auto l = std::make_shared<link>(loop_, c.link_fd, options_.max_frame, options_.max_link_queue);
  auto p = std::make_shared<peer>(*this, l, peer::role::child, c.pid);
  {
    std::lock_guard guard{state->mtx};
    state->pid = c.pid;
    state->pidfd = c.pidfd;
    state->link = p;
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
    if (state->start_settled())
      return;
    state->start_error = std::move(why);
    if (state->pid == 0)  // never ran: nothing will be reaped
      state->state = process_state::phase::ended;
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
  for (auto& fn : callbacks)
    fn(*code);
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

// ---- TCP between nodes -----------------------------------------------------------------

std::uint16_t node_impl::listen(const endpoint& at, std::string key) {
  auto l = std::make_unique<listener>(loop_, at, std::move(key), [this](int fd, const std::string& from) {
    adopt_remote(fd, from);
  });
  auto port = l->port();
  auto* raw = l.get();
  {
    std::lock_guard guard{mtx_};
    if (shutting_down_)
      throw error(make_error(errc::node_shutdown, "the node is shutting down"),
                  "the node is shutting down");
    listeners_.push_back(std::move(l));
  }
  loop_.post([raw] { raw->start(); });
  log::info("listening for nodes on ", raw->address().text());
  return port;
}

std::shared_ptr<peer> node_impl::adopt_remote(int fd, const std::string& from) {
  auto l = std::make_shared<link>(loop_, fd, options_.max_frame, options_.max_link_queue);
  auto p = std::make_shared<peer>(*this, l, peer::role::remote, 0);
  {
    std::lock_guard guard{mtx_};
    peers_.insert(p);
    ++remote_peers_;
    ++remote_peers_ever_;
  }
  p->open([this, from](peer& closed, const std::string& why) {
    log::info("node connection with ", from, " closed: ", why);
    on_peer_closed(closed.shared_from_this(), why);
  });
  keep_heartbeat(p);
  return p;
}

void node_impl::wait_for_roots(bool forever) {
  std::unique_lock lock{mtx_};
  remote_changed_.wait(lock, [&] {
    return stop_waiting_ || (!forever && remote_peers_ever_ > 0 && remote_peers_ == 0);
  });
}

void node_impl::stop_waiting() {
  std::lock_guard guard{mtx_};
  stop_waiting_ = true;
  remote_changed_.notify_all();
}

void node_impl::keep_heartbeat(const std::weak_ptr<peer>& w) {
  loop_.after(options_.heartbeat_interval, [this, w] {
    auto p = w.lock();
    if (!p || p->link().closed())
      return;
    auto silent = std::chrono::duration_cast<std::chrono::milliseconds>(io_loop::clock::now()
                                                                        - p->last_heard());
    if (silent > options_.heartbeat_timeout) {
      p->close("node " + std::to_string(p->who().pid) + " gave no sign of life for "
               + std::to_string(silent.count()) + " ms");
      return;
    }
    p->send_heartbeat();
    keep_heartbeat(w);
  });
}

std::shared_ptr<peer> node_impl::connect(const endpoint& to, std::string_view key,
                                         std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  int fd = connect_authenticated(to, key, timeout);
  // Settled once: by the remote hello, or by the link failing first.
  struct pending {
    std::promise<caf::expected<std::shared_ptr<peer>>> answer;
    std::atomic<bool> settled{false};
    std::weak_ptr<peer> p;  // loop thread
    void settle(caf::expected<std::shared_ptr<peer>> r) {
      if (!settled.exchange(true))
        answer.set_value(std::move(r));
    }
  };
  auto state = std::make_shared<pending>();
  loop_.post([this, fd, to, state] {
    auto p = adopt_remote(fd, to.text());
    state->p = p;
    p->on_failed([state](const caf::error& why) { state->settle(why); });
    p->when_introduced([state, w = std::weak_ptr<peer>{p}] {
      if (auto p = w.lock())
        state->settle(p);
    });
  });
  auto answer = state->answer.get_future();
  if (answer.wait_until(deadline) != std::future_status::ready) {
    loop_.post([state] {  // no half-open peer left behind, heartbeating and counted
      if (auto p = state->p.lock())
        p->close("no hello within the connect timeout");
    });
    auto why = to.text() + " authenticated but sent no hello within the timeout";
    throw error(make_error(errc::timeout, why), why);
  }
  auto r = answer.get();
  if (!r)
    throw error(r.error(), system_->render(r.error()));
  return *r;
}

// ---- child mode ------------------------------------------------------------------------

void node_impl::request_exit(int code) {
  std::lock_guard guard{mtx_};
  if (!exit_code_)
    exit_code_ = code;
  exit_requested_.notify_all();
}

void node_impl::run_child() {
  // fd 3 must not leak into programs this child runs (subprocess): the parent would not
  // see EOF when this process dies.
  ::fcntl(child_link_fd, F_SETFD, FD_CLOEXEC);
  auto l =
    std::make_shared<link>(loop_, child_link_fd, options_.max_frame, options_.max_link_queue);
  {
    std::lock_guard guard{mtx_};
    parent_ = std::make_shared<peer>(*this, l, peer::role::parent, ::getppid());
    peers_.insert(parent_);
  }
  loop_.post([this] {
    parent_->open([this](peer& closed, const std::string& why) {
      on_peer_closed(closed.shared_from_this(), why);
    });
  });
  int code;
  {
    std::unique_lock lock{mtx_};
    exit_requested_.wait(lock, [this] { return exit_code_.has_value(); });
    code = *exit_code_;
  }
  run_exit_hooks();
  finish_children();
  parent_->link().flush(std::chrono::seconds{2});
  std::fflush(nullptr);
  // Like Python's children (os._exit after the target): no static destructors, no waiting
  // for actors that are still running.
  ::_exit(code);
}

} // namespace mproc::detail
