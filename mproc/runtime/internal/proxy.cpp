#include "mproc/runtime/internal/proxy.hpp"

#include <caf/mailbox_element.hpp>
#include <caf/sec.hpp>

#include "mproc/runtime/errors.hpp"
#include "mproc/runtime/internal/peer.hpp"

namespace mproc::detail {

proxy::proxy(caf::actor_config& cfg, std::shared_ptr<peer> via, std::uint64_t remote_id)
  : caf::actor_proxy(cfg), remote_id_(remote_id), via_(std::move(via)) {}

proxy::~proxy() {
  if (auto p = via())
    p->forget(remote_id_, this);
}

std::shared_ptr<peer> proxy::via() const {
  std::lock_guard guard{mtx_};
  return via_;
}

bool proxy::killed() const {
  std::lock_guard guard{mtx_};
  return via_ == nullptr;
}

void proxy::enqueue(caf::mailbox_element_ptr what, caf::execution_unit* host) {
  std::shared_ptr<peer> p;
  caf::error reason;
  {
    std::lock_guard guard{mtx_};
    p = via_;
    reason = reason_;
  }
  if (p) {
    p->forward(*this, std::move(what), host);
    return;
  }
  // Killed: a request gets the reason as its answer (CAF 0.17's bounce() would answer
  // request_receiver_down and lose the exit status); anything else is dropped, as CAF drops
  // messages to ended actors.
  if (!what->mid.is_request() || !what->sender)
    return;
  if (!reason)
    reason = make_error(errc::no_such_actor, "the actor has ended");
  what->sender->enqueue(caf::make_mailbox_element(ctrl(), what->mid.response_id(), {},
                                                  std::move(reason)),
                        host);
}

void proxy::kill_proxy(caf::execution_unit* host, caf::error reason) {
  std::shared_ptr<peer> gone;
  {
    std::lock_guard guard{mtx_};
    reason_ = reason;
    gone.swap(via_);
  }
  if (gone)
    gone->forget(remote_id_, this);
  cleanup(std::move(reason), host);
}

void proxy::watch_remote() {
  std::shared_ptr<peer> p;
  {
    std::lock_guard guard{mtx_};
    if (watching_ || !via_)
      return;
    watching_ = true;
    p = via_;
  }
  p->watch(*this);
}

void proxy::attach(caf::attachable_ptr ptr) {
  caf::actor_proxy::attach(std::move(ptr));
  watch_remote();
}

bool proxy::add_backlink(caf::abstract_actor* x) {
  auto added = caf::actor_proxy::add_backlink(x);
  watch_remote();
  return added;
}

} // namespace mproc::detail
