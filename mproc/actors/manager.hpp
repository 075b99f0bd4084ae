// Manager: Python's multiprocessing.Manager(), a server process holding shared objects that
// other processes — here or on other machines — use through proxies.
//
//   mproc::manager m{node};                          // starts the manager's process
//   auto d = m.dict<mproc::value, mproc::value>();   // Python's m.dict()
//   auto l = m.list<int>();
//   node.spawn_process("fill", {}, d, l);            // proxies are plain arguments
//   std::cout << d << "\n" << l << "\n";
//   // the manager stops at m.shutdown(), or when m and every proxy it made in this process
//   // are gone (as Python's proxies keep their manager); later calls fail at once
//
// Objects made with a name ("scores") are found again by that name, by this program or by
// another that attaches to the manager: from a descendant with manager::lookup(name), from
// another machine with manager::connect(remote_node, name) when the manager was given
// manager_options::name. Objects live until released or until the manager ends.
//
// Destroy a manager, and the proxies it made, before its node. A registered class's method
// must not call its own manager: the manager runs one operation at a time, so the call waits
// for its timeout.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "mproc/actors/dict_proxy.hpp"
#include "mproc/actors/list_proxy.hpp"
#include "mproc/actors/namespace_proxy.hpp"
#include "mproc/actors/object_proxy.hpp"
#include "mproc/actors/queue_proxy.hpp"
#include "mproc/actors/sync_proxy.hpp"
#include "mproc/runtime/node.hpp"

namespace mproc {

namespace detail {
class manager_life;
}

struct manager_options {
  // Registered under this name in the creating node (node::register_name), so that
  // descendants (manager::lookup) and other nodes (manager::connect) find it. Empty: none.
  std::string name;
  // Serve from an actor in this process instead of a child process of its own.
  bool in_process = false;
  // The child process's name (Python calls it SyncManager-1).
  std::string process_name = "SyncManager";
  // Each proxy call's timeout (a proxy's set_timeout changes its own).
  std::chrono::milliseconds timeout{10'000};
};

class manager {
public:
  // Starts a manager. Throws mproc::error when its process cannot start, or bad_arguments
  // when options.name is taken in this node.
  explicit manager(node& owner, manager_options options = {});
  // A handle to a manager that someone else started: its end does not stop the manager.
  // `timeout` is then each proxy call's, as manager_options::timeout (and for lookup and
  // connect also the lookup's): a short one for a lookup that fails fast shortens every call.
  static manager attach(caf::actor server,
                        std::chrono::milliseconds timeout = std::chrono::seconds{10});
  // The manager registered as `name` in this process or an ancestor.
  static manager lookup(const std::string& name,
                        std::chrono::milliseconds timeout = std::chrono::seconds{10});
  // The manager registered as `name` on another node.
  static manager connect(remote_node& other, const std::string& name,
                         std::chrono::milliseconds timeout = std::chrono::seconds{10});

  manager(manager&&) noexcept;
  manager& operator=(manager&&) noexcept;
  ~manager();

  // Stops the manager if this handle started it (Python's shutdown()), even while proxies it
  // made are held; their calls then fail with process_exited or no_such_actor. Idempotent.
  void shutdown();

  // A new object, or with a name the one already under it (bad_arguments when it is of
  // another kind).
  template <class K, class V>
  dict_proxy<K, V> dict(const std::string& name = {}) const {
    return dict_proxy<K, V>{create("dict", name)};
  }
  template <class T>
  list_proxy<T> list(const std::string& name = {}) const {
    return list_proxy<T>{create("list", name)};
  }
  namespace_proxy namespace_(const std::string& name = {}) const;
  // Python's SyncManager types (actors/sync_proxy.hpp, actors/queue_proxy.hpp).
  event_proxy event(const std::string& name = {}) const;
  lock_proxy lock(const std::string& name = {}) const;
  template <class T>
  value_proxy<T> value(const T& initial, const std::string& name = {}) const {
    return value_proxy<T>{create("value", name, detail::pack_value<T>(initial))};
  }
  // maxsize 0: unbounded.
  template <class T>
  queue_proxy<T> queue(std::size_t maxsize = 0, const std::string& name = {}) const {
    return queue_proxy<T>{create("queue", name, detail::pack_value<std::uint64_t>(maxsize))};
  }
  // An object of a class registered with MPROC_MANAGED, default-constructed in the manager.
  template <class T>
  object_proxy<T> object(const std::string& name = {}) const {
    return object_proxy<T>{create(detail::managed_name_of(typeid(T)), name)};
  }
  // The same by the class's registered name, for a program without the class.
  object_proxy<> object(const std::string& type, const std::string& name) const;

  // Forgets the object: its memory goes, and every proxy of it then fails with
  // no_such_actor. False when it was already released.
  // Throws bad_arguments for a proxy of another manager.
  template <class Proxy>
  bool release(const Proxy& proxy) const {
    return release_id(proxy.ref());
  }
  // The named objects and their kinds ("dict", "list", "namespace", a class name).
  std::vector<std::pair<std::string, std::string>> names() const;

  const caf::actor& actor() const { return server_; }
  // The manager's process; nullopt when it runs in a process this handle did not start.
  const std::optional<process>& server_process() const;

private:
  manager() = default;
  void end_share() noexcept;
  detail::manager_ref create(const std::string& kind, const std::string& name,
                             std::optional<bytes> parameter = {}) const;
  bool release_id(const detail::manager_ref& ref) const;
  detail::manager_ref self_ref() const;

  caf::actor server_;
  // Stopping the manager, where this handle started it: shared with the proxies it makes.
  std::shared_ptr<detail::manager_life> life_;
  std::chrono::milliseconds timeout_{10'000};
};

} // namespace mproc
