#include "mproc/runtime/internal/node_impl.hpp"

#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstdio>
#include <future>
#include <stdexcept>
#include <unordered_map>
#include <mutex>

#include <caf/actor_cast.hpp>
#include <caf/blocking_actor.hpp>
#include <caf/make_actor.hpp>
#include <caf/send.hpp>

#include "mproc/runtime/actor_registry.hpp"
#include "mproc/runtime/deadline.hpp"
#include "mproc/runtime/log.hpp"
#include "mproc/runtime/internal/blob_pool.hpp"
#include "mproc/runtime/internal/caf_threads.hpp"
#include "mproc/runtime/internal/inline_runner.hpp"
#include "mproc/runtime/internal/message_codec.hpp"
#include "mproc/runtime/internal/proxy.hpp"
#include "mproc/serialization/type_registry.hpp"

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

start_method default_start_method() {
  auto* env = std::getenv("MPROC_START_METHOD");
  if (env == nullptr || *env == '\0')
    return start_method::forkserver;
  if (std::string_view{env} == "exec")
    return start_method::exec;
  if (std::string_view{env} != "forkserver")
    log::warn("MPROC_START_METHOD=", env, " is neither exec nor forkserver: using forkserver");
  return start_method::forkserver;
}

} // namespace

namespace {

// The nodes of this process that live, by address and id (an address may be a later node's):
// a process handle may outlive its node, and must not start through a node that is gone.
// Never destroyed: a node in a static of the program may end after function statics do.
std::mutex& living_mtx() {
  static auto* m = new std::mutex;
  return *m;
}
std::unordered_map<const node_impl*, std::uint64_t>& living() {
  static auto* nodes = new std::unordered_map<const node_impl*, std::uint64_t>;
  return *nodes;
}

} // namespace

node_impl::node_impl(node_options options, std::optional<child_args> child)
  : options_(std::move(options)), child_(std::move(child)) {
  validate(options_);
  // A century or more is for ever (runtime/deadline.hpp): clamped there, these durations
  // can be added to the clock (milliseconds::max() in nanoseconds would wrap to the past).
  for (auto* d : {&options_.start_timeout, &options_.daemon_grace,
                  &options_.heartbeat_interval, &options_.heartbeat_timeout})
    *d = std::min(*d, forever_beyond);
  method_ = options_.start_method.value_or(default_start_method());
  register_builtin_types();
  wire::types().freeze();
  name_ = child_ ? child_->name : options_.name;
  set_current_process_name(name_);
  log::set_process_name(name_);
  id_ = random_node_id();
  executable_ = options_.executable.empty() ? self_executable() : options_.executable;
  // This program by its /proc link, not its path: a binary replaced on disk while the root
  // runs (an upgrade) leaves the path naming another program, or none ("... (deleted)").
  exec_path_ = options_.executable.empty() ? "/proc/self/exe" : options_.executable;
  auto threads = child_ ? options_.child_threads
                        : (options_.threads != 0 ? options_.threads : cpu_count());
  config_.set("scheduler.max-threads", threads);
  // The work-stealing default polls when idle; sharing sleeps (CAF-NOTES, "Scheduler").
  config_.set("scheduler.policy", caf::atom("sharing"));
  config_.add_error_category(caf::atom("mproc"), render_mproc_error);
  watch_caf_threads(config_);
  system_ = std::make_unique<caf::actor_system>(config_);
  caf::actor_config requester_config;
  requester_handle_ = caf::make_actor<requester, caf::actor>(
    system_->next_actor_id(), system_->node(), system_.get(), requester_config);
  requester_ = static_cast<requester*>(caf::actor_cast<caf::abstract_actor*>(requester_handle_));
  requester_->use_loop(&loop_);
  loop_.start([this] { return std::make_unique<inline_runner>(*system_); });
  allow_segment_trimming();  // a thread of its own, now that the process has threads anyway
  // A root starts its fork server at once, so that it is ready for the first child; a child
  // node only when it starts children of its own (most never do).
  if (!child_ && uses_fork_server())
    loop_.post([this] { start_fork_server(); });
  if (!child_)
    inspector_ = std::make_unique<inspector>([this](auto deadline) { return inspect(deadline); });
  track_for_inspection(true);  // last: nothing after it can throw and leave it dangling
  std::lock_guard guard{living_mtx()};
  living().emplace(this, id_);
}

bool node_impl::alive(const node_impl* n, std::uint64_t id) {
  std::lock_guard guard{living_mtx()};
  auto i = living().find(n);
  return i != living().end() && i->second == id;
}

node_impl::~node_impl() {
  {
    std::lock_guard guard{living_mtx()};
    living().erase(this);
  }
  shutdown();
  track_for_inspection(false);
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
  commands_.finish();
  inspector_.reset();  // answers until here: a root waiting for its children can be looked at
  close_peers();
  loop_.post([this] { listeners_.clear(); });  // stop() runs it before the loop ends
  // What the node kept alive on its own (actors spawned for peers, named actors) would keep
  // ~actor_system waiting forever. Ended before the loop stops: an actor a loop thread runs
  // may wait for one of them, and stop() waits for that thread.
  std::unordered_map<std::uint64_t, caf::actor> kept;
  std::unordered_map<std::string, caf::actor> named;
  {
    std::lock_guard guard{mtx_};
    kept.swap(kept_alive_);
    named.swap(names_);
    keeping_ = false;  // the loop still runs: nothing it spawns from now on is kept
  }
  for (auto& [id, a] : kept)
    caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
  kept.clear();
  named.clear();
  // Actors still running may call node::request until the system is gone: the requester
  // refuses from now on, and lives (its handle is a member) until nothing can reach it.
  // Stopped before the loop: an actor a loop thread runs may wait in node::request, and
  // stop() waits for that thread.
  requester_->stop(make_error(errc::node_shutdown, "the node is shutting down"));
  loop_.stop();
  {
    std::lock_guard guard{exports_mtx_};
    exports_.clear();
    last_export_.store(0);
  }
  // Waits for the remaining actors while the system is still whole: they may use it
  // (this_node().system()) until they end; reset() alone would null it first.
  system_->await_all_actors_done();
  system_.reset();  // waits for the remaining actors, with the node still intact
  drop_fork_starts();
}

// ---- exported actors -------------------------------------------------------------------

wire::actor_ref node_impl::export_actor(const caf::strong_actor_ptr& actor) {
  if (last_export_.load(std::memory_order_acquire) == actor->id())
    return {id_, actor->id()};
  std::lock_guard guard{exports_mtx_};
  auto& slot = exports_[actor->id()];
  if (slot.get() != actor.get())
    slot = caf::weak_actor_ptr{actor.get()};
  last_export_.store(actor->id(), std::memory_order_release);
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

bool node_impl::gave_up(const caf::weak_actor_ptr& sender, caf::message_id mid) {
  // Compared without lock(): a strong reference made here could be the last one, and an
  // actor's end must not run under the caller's lock.
  return sender.get() == requester_->ctrl()
         && !requester_->waiting(mid.request_id().integer_value());
}

void node_impl::keep_alive(const caf::actor& a) {
  if (!a || dynamic_cast<proxy*>(caf::actor_cast<caf::abstract_actor*>(a)) != nullptr)
    return;  // a proxy's actor is kept (or not) by its own process
  auto id = a.id();
  {
    std::lock_guard guard{mtx_};
    if (!keeping_ || !kept_alive_.emplace(id, a).second)
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

caf::expected<caf::actor> node_impl::spawn_for(peer& from, const std::string& actor,
                                               const caf::message& args, bool main) {
  // `main` is the parent's word to its child only; a peer over TCP (or this node's own
  // child) must not decide when this process ends.
  main = main && from.kind() == peer::role::parent;
  auto result = spawn_registered(*system_, actor, args);
  if (!result) {
    if (main && child_)
      loop_.post([this] { request_exit(1); });  // nothing to run: the child is done
    return result;
  }
  keep_alive(*result);
  if (from.kind() == peer::role::remote) {
    std::lock_guard guard{mtx_};
    auto& spawned = spawned_for_[&from];
    // A root that stays connected and spawns per task: forget the ended ones now and then
    // (at each power of two), so the list follows what lives.
    if (spawned.size() >= 64 && (spawned.size() & (spawned.size() - 1)) == 0)
      std::erase_if(spawned, [](const caf::weak_actor_ptr& w) { return !w.lock(); });
    spawned.push_back(caf::actor_cast<caf::weak_actor_ptr>(*result));
  }
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
      end_spawned_for(*p);
      std::lock_guard guard{mtx_};
      --remote_peers_;
      remote_changed_.notify_all();
    }
    return;
  }
  on_child_link_closed(child, p, why);
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

bool node_impl::unregister_name(const std::string& name, const caf::actor_addr& actor) {
  std::lock_guard guard{mtx_};
  auto i = names_.find(name);
  if (i == names_.end() || i->second.address() != actor)
    return false;
  names_.erase(i);
  return true;
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
  l->allow_ring();  // the parent offers shared memory
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
    // As shutdown() does for a root: a daemon child whose start (a fork server's answer)
    // comes after this is stopped as it attaches, rather than run with nobody to stop it.
    shutting_down_ = true;
  }
  run_exit_hooks();
  finish_children();
  commands_.finish();
  // What this child sent (a result, a reply) reaches its parent however long the parent
  // takes to read it: one stopped (SIGSTOP, a debugger) loses nothing, as Python's child
  // joins its queues' feeder threads. A parent that ended closes the link: the wait ends.
  if (!parent_->link().flush(std::chrono::seconds{2}) && !parent_->link().closed()) {
    log::warn("the parent (pid ", ::getppid(), ") does not read: waiting to hand it what "
              "this process sent before ending");
    parent_->link().flush(std::nullopt);
  }
  std::fflush(nullptr);
  // Like Python's children (os._exit after the target): no static destructors, no waiting
  // for actors that are still running.
  ::_exit(code);
}

} // namespace mproc::detail
