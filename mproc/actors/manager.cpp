#include "mproc/actors/manager.hpp"

#include "mproc/actors/manager_protocol.hpp"
#include "mproc/actors/manager_server.hpp"
#include "mproc/runtime/log.hpp"

#include <atomic>

#include <caf/send.hpp>

namespace mproc {

namespace detail {

// What the handle that started a manager owns: stopping it. The handle and every proxy it
// made in this process share it, as a Python proxy holds its manager: the manager stops at
// shutdown(), at the handle's end when nothing else holds it, or when the last proxy goes.
class manager_life {
public:
  manager_life(caf::actor server, std::optional<process> proc, std::chrono::milliseconds timeout)
    : server_{std::move(server)}, process_{std::move(proc)}, timeout_{timeout} {}
  // The last proxy may go anywhere: on the node's loop thread (a spawn's arguments, released
  // there), in an actor on a scheduler thread, with the node's lock held. So it only asks
  // the manager to stop, waiting for nothing and taking no lock; the node reaps its process
  // (a daemon child) and drops its name when it ends.
  ~manager_life() {
    if (stopped_.exchange(true))
      return;
    caf::anon_send(server_, m_call_atom::value, manager_object, caf::atom("stop"),
                   manager_args{});
    if (!process_)
      caf::anon_send_exit(server_, caf::exit_reason::user_shutdown);
  }
  manager_life(const manager_life&) = delete;
  manager_life& operator=(const manager_life&) = delete;

  void registered_as(std::string name) { registered_as_ = std::move(name); }
  const std::optional<process>& server_process() const { return process_; }

  // Asks the manager to stop, waits up to stop_grace for its process, then kills it. Once;
  // on a thread that may wait (shutdown(), the handle's end).
  void stop() {
    if (!stopped_.exchange(true))
      stop_once();
  }

private:
  // How long stop() waits for the manager to stop by itself before killing its process.
  static constexpr std::chrono::seconds stop_grace{5};

  void stop_once() noexcept {
    try {
      if (!registered_as_.empty())
        this_node().unregister_name(registered_as_, server_.address());
      manager_ref stop{server_, manager_object,
                       std::min<std::chrono::milliseconds>(timeout_, stop_grace)};
      stop.call(caf::atom("stop"), {});
    } catch (const std::exception& e) {  // gone already, or the node is: nothing left to stop
      log::debug("manager shutdown: ", e.what());
    }
    // An in-process manager that did not answer (stuck) would keep the node waiting for its
    // actors for ever.
    if (!process_)
      caf::anon_send_exit(server_, caf::exit_reason::user_shutdown);
    try {
      if (process_ && !process_->join(stop_grace)) {
        process_->kill();
        process_->join();
      }
    } catch (const std::exception& e) {
      log::debug("manager shutdown: ", e.what());
    }
  }

  caf::actor server_;
  std::optional<process> process_;
  std::string registered_as_;
  std::chrono::milliseconds timeout_;
  std::atomic<bool> stopped_{false};
};

} // namespace detail

manager::manager(node& owner, manager_options options) : timeout_{options.timeout} {
  std::optional<process> proc;
  if (options.in_process) {
    server_ = detail::spawn_local_manager(owner.system());
    owner.keep_alive(server_);  // ended at the node's end, should a proxy never be dropped
  } else {
    // A daemon: a manager handle that is never destroyed still ends with the node.
    proc = owner.spawn_process(detail::manager_actor_name(),
                               {.name = options.process_name, .daemon = true});
    server_ = proc->actor();
  }
  life_ = std::make_shared<detail::manager_life>(server_, std::move(proc), timeout_);
  if (options.name.empty())
    return;
  owner.register_name(options.name, server_);  // throws: life_ stops the manager on the way out
  life_->registered_as(options.name);
}

manager manager::attach(caf::actor server, std::chrono::milliseconds timeout) {
  if (!server)
    throw error(make_error(errc::bad_arguments, "attach to no actor"),
                "manager::attach: no actor");
  manager m;
  m.server_ = std::move(server);
  m.timeout_ = timeout;
  return m;
}

manager manager::lookup(const std::string& name, std::chrono::milliseconds timeout) {
  return attach(this_node().lookup(name, timeout), timeout);
}

manager manager::connect(remote_node& other, const std::string& name,
                         std::chrono::milliseconds timeout) {
  return attach(other.lookup(name, timeout), timeout);
}

manager::manager(manager&&) noexcept = default;

manager& manager::operator=(manager&& other) noexcept {
  if (this != &other) {
    end_share();
    server_ = std::move(other.server_);
    life_ = std::move(other.life_);
    timeout_ = other.timeout_;
  }
  return *this;
}

manager::~manager() { end_share(); }

// The handle ends on its owner's thread, which may wait: when nothing else holds the manager,
// it stops here as at shutdown() (Python's `with` block); otherwise the last proxy stops it.
void manager::end_share() noexcept {
  if (life_ && life_.use_count() == 1)
    life_->stop();
  life_.reset();
}

void manager::shutdown() {
  if (life_)
    life_->stop();  // kept: server_process() still tells how it ended
}

const std::optional<process>& manager::server_process() const {
  static const std::optional<process> none;
  return life_ ? life_->server_process() : none;
}

detail::manager_ref manager::self_ref() const {
  return detail::manager_ref{server_, detail::manager_object, timeout_};
}

detail::manager_ref manager::create(const std::string& kind, const std::string& name,
                                    std::optional<bytes> parameter) const {
  auto args = name.empty() ? detail::pack_values(kind, ::mproc::value{})
                           : detail::pack_values(kind, ::mproc::value{name});
  if (parameter)
    args.push_back(std::move(*parameter));
  auto id = detail::unpack_value<std::uint64_t>(self_ref().call_one(caf::atom("create"), args));
  return detail::manager_ref{server_, id, timeout_, life_};
}

event_proxy manager::event(const std::string& name) const {
  return event_proxy{create("event", name)};
}

lock_proxy manager::lock(const std::string& name) const {
  return lock_proxy{create("lock", name)};
}

namespace_proxy manager::namespace_(const std::string& name) const {
  return namespace_proxy{create("namespace", name)};
}

object_proxy<> manager::object(const std::string& type, const std::string& name) const {
  return object_proxy<>{create(type, name)};
}

bool manager::release_id(const detail::manager_ref& ref) const {
  if (ref.server() != server_)
    throw error(make_error(errc::bad_arguments, "a proxy of another manager"),
                "manager::release: a proxy of another manager");
  return detail::unpack_value<bool>(
    self_ref().call_one(caf::atom("release"), {detail::pack_value(ref.id())}));
}

std::vector<std::pair<std::string, std::string>> manager::names() const {
  return detail::unpack_pairs<std::string, std::string>(self_ref().call(caf::atom("names"), {}));
}

} // namespace mproc
