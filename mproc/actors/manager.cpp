#include "mproc/actors/manager.hpp"

#include "mproc/actors/manager_server.hpp"
#include "mproc/runtime/log.hpp"

namespace mproc {

namespace {
// How long shutdown() waits for the manager to stop by itself before killing its process.
constexpr std::chrono::seconds stop_grace{5};
} // namespace

manager::manager(node& owner, manager_options options)
    : owner_{true}, timeout_{options.timeout} {
  if (options.in_process) {
    server_ = detail::spawn_local_manager(owner.system());
  } else {
    // A daemon: a manager handle that is never destroyed still ends with the node.
    process_ = owner.spawn_process(detail::manager_actor_name(),
                                   {.name = options.process_name, .daemon = true});
    server_ = process_->actor();
  }
  if (options.name.empty())
    return;
  try {
    owner.register_name(options.name, server_);
    registered_as_ = options.name;
  } catch (...) {
    shutdown();
    throw;
  }
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

manager::manager(manager&& other) noexcept
    : server_{std::move(other.server_)},
      process_{std::move(other.process_)},
      registered_as_{std::move(other.registered_as_)},
      owner_{std::exchange(other.owner_, false)},
      timeout_{other.timeout_} {}

manager& manager::operator=(manager&& other) noexcept {
  if (this != &other) {
    shutdown();
    server_ = std::move(other.server_);
    process_ = std::move(other.process_);
    registered_as_ = std::move(other.registered_as_);
    owner_ = std::exchange(other.owner_, false);
    timeout_ = other.timeout_;
  }
  return *this;
}

manager::~manager() { shutdown(); }

void manager::shutdown() {
  if (!std::exchange(owner_, false) || !server_)
    return;
  try {
    if (!registered_as_.empty())
      this_node().unregister_name(registered_as_, server_.address());
    auto stop = self_ref();
    stop.timeout(std::min<std::chrono::milliseconds>(timeout_, stop_grace));
    stop.call(caf::atom("stop"), {});
  } catch (const std::exception& e) {  // gone already, or the node is: nothing left to stop
    log::debug("manager shutdown: ", e.what());
  }
  if (process_ && !process_->join(stop_grace)) {
    process_->kill();
    process_->join();
  }
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
  return detail::manager_ref{server_, id, timeout_};
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
