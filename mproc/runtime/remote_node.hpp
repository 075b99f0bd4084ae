// Another node, reached over TCP (docs/distributed.md).
//
//   auto key = mproc::authkey::from_file("authkey");
//   node.listen(key, "0.0.0.0:7000");                      // on one machine
//   auto other = node.connect("10.0.0.2:7000", key);       // on another
//   auto worker = other.spawn("worker", 42);               // runs in that node's process
//   node.request<int>(worker, 1s, 7);
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include <caf/actor.hpp>
#include <caf/message.hpp>

#include "mproc/runtime/sendable.hpp"

namespace mproc {

namespace detail {
class peer;
}

class remote_node {
public:
  explicit remote_node(std::shared_ptr<detail::peer> peer, std::string address);

  std::uint64_t id() const;
  const std::string& name() const { return name_; }
  std::int64_t pid() const;
  const std::string& address() const { return address_; }
  // False once the connection is gone.
  bool connected() const;

  // Spawns the actor registered as `actor` in that node's process. Throws mproc::error
  // (unknown_actor_name, bad_arguments, link_lost, timeout).
  template <class... Ts>
  caf::actor spawn(std::string_view actor, Ts&&... args) {
    return spawn_message(actor, detail::message_of(std::forward<Ts>(args)...),
                         std::chrono::seconds{10});
  }
  caf::actor spawn_message(std::string_view actor, const caf::message& args,
                           std::chrono::milliseconds timeout);
  // Starts a child process of that node running `actor` — that node reaps it and kills it
  // when it ends, as for its own children — and returns the actor. `args` are plain values
  // (no actor references). Throws mproc::error (as spawn, plus spawn_failed).
  template <class... Ts>
  caf::actor spawn_process(std::string_view actor, std::string process_name, Ts&&... args) {
    return spawn_process_message(actor, std::move(process_name),
                                 detail::message_of(std::forward<Ts>(args)...),
                                 std::chrono::seconds{15});
  }
  caf::actor spawn_process_message(std::string_view actor, std::string process_name,
                                   const caf::message& args, std::chrono::milliseconds timeout);
  // The actor registered as `name` on that node (or its ancestors). Throws mproc::error.
  caf::actor lookup(const std::string& name,
                    std::chrono::milliseconds timeout = std::chrono::seconds{10});
  // Closes the connection; its proxies die with link_lost.
  void disconnect();
  // `fn(reason)` runs once when the node is declared down (connection closed, or silent for
  // node_options::heartbeat_timeout), also when it already is, on a thread of its own, so it
  // may block (connect again, request); this node's end waits for it to return. It does not
  // run for this node's own end.
  void on_down(std::function<void(const std::string& reason)> fn);

private:
  std::shared_ptr<detail::peer> peer_;
  std::string address_;
  std::string name_;
};

} // namespace mproc
