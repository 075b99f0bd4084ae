// A local stand-in for an actor in another process, reached through one peer.
//
// A proxy is an ordinary local actor to CAF (local node id, fresh local actor id): anything
// sent to it is encoded and written to its peer; when the actor behind it ends or the peer
// is lost, kill_proxy() gives its monitors and links the reason. Because it has a local id, a
// proxy can itself be handed to a third process, which then reaches the actor through this
// node, hop by hop (docs/architecture.md, "Addressing").
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>

#include <caf/actor_proxy.hpp>

namespace mproc::detail {

class peer;

class proxy final : public caf::actor_proxy {
public:
  proxy(caf::actor_config& cfg, std::shared_ptr<peer> via, std::uint64_t remote_id);
  ~proxy() override;

  void enqueue(caf::mailbox_element_ptr what, caf::execution_unit* host) override;
  void kill_proxy(caf::execution_unit* host, caf::error reason) override;

  // A monitor or link on the proxy asks the peer to report the remote actor's end.
  void attach(caf::attachable_ptr ptr) override;
  bool add_backlink(caf::abstract_actor* x) override;

  std::uint64_t remote_id() const { return remote_id_; }
  // Null once the proxy was killed.
  std::shared_ptr<peer> via() const;
  // The same question without a reference to the peer (which a caller holding another
  // peer's lock must not be left to release).
  bool killed() const;

private:
  void watch_remote();

  const std::uint64_t remote_id_;
  mutable std::mutex mtx_;
  std::shared_ptr<peer> via_;
  caf::error reason_;  // set before via_ is cleared: requests arriving then get it
  bool watching_ = false;
};

} // namespace mproc::detail
