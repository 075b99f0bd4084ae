// A peer: its lifecycle (hello, open, close, failure) and its reference tables (actors
// exported to it, proxies for its actors). Outgoing and incoming frames are in
// peer_outbound.cpp and peer_inbound.cpp.
#include "mproc/runtime/internal/peer.hpp"

#include <algorithm>

#include <unistd.h>

#include <typeinfo>

#include <caf/actor_cast.hpp>
#include <caf/actor_system.hpp>
#include <caf/exit_reason.hpp>
#include <caf/make_actor.hpp>

#include "mproc/runtime/errors.hpp"
#include "mproc/runtime/log.hpp"
#include "mproc/runtime/internal/blob_pool.hpp"
#include "mproc/runtime/internal/node_impl.hpp"
#include "mproc/runtime/internal/proxy.hpp"

namespace mproc::detail {

peer::peer(node_impl& node, std::shared_ptr<detail::link> link, role r, std::int64_t pid)
  : node_(node), link_(std::move(link)), role_(r) {
  who_.pid = pid;
  wire::frame_out out;
  wire::pack_hello(out.buf, node_.id(), ::getpid(), node_.name(), node_.options().max_frame);
  send_frame(std::move(out));
}

peer::~peer() {
  for (int fd : frame_fds_)  // after an fds frame whose frame never came
    if (fd >= 0)
      detail::close_unclaimed(fd);
}

void peer::open(closed_callback on_closed) {
  on_closed_ = std::move(on_closed);
  link_->open([this](std::string_view payload) { on_frame(payload); },
              [w = weak_from_this()](const std::string& why) {
                if (auto self = w.lock())
                  if (auto cb = std::move(self->on_closed_))
                    cb(*self, why);
              },
              [w = weak_from_this()] {  // after every read, whole frames in it or not
                if (auto self = w.lock()) {
                  self->heard();  // a large frame on a slow link is a sign of life all along
                  self->release_recent();
                }
              });
}

void peer::close(const std::string& why) {
  link_->close(why);
}

peer::identity peer::who() const {
  std::lock_guard guard{mtx_};
  return who_;
}

caf::actor_system& peer::system() {
  return node_.system();
}

void peer::fail(const caf::error& reason) {
  introduced_ = nullptr;  // loop thread; it may hold this peer
  std::vector<caf::strong_actor_ptr> proxies;
  std::vector<pending_request> requests;
  std::vector<spawn_callback> spawns;
  std::unordered_map<std::uint64_t, caf::strong_actor_ptr> reexports;
  std::unordered_map<std::uint64_t, caf::strong_actor_ptr> watched;
  std::unordered_map<std::uint64_t, caf::weak_actor_ptr> monitored;
  std::vector<std::function<void(const caf::error&)>> on_failed;
  {
    std::lock_guard guard{mtx_};
    if (failed_)
      return;
    failed_ = true;
    on_failed.swap(on_failed_);
    fail_reason_ = reason;
    reexports.swap(reexports_);
    watched.swap(watched_);
    monitored.swap(monitored_);
    for (auto& [id, weak] : proxies_)
      if (auto p = weak.lock())
        proxies.push_back(std::move(p));
    for (auto& [key, p] : requests_)
      requests.push_back(std::move(p));
    for (auto& [id, cb] : answers_)
      spawns.push_back(std::move(cb));
    proxies_.clear();
    requests_.clear();
    answers_.clear();
  }
  for (auto& p : proxies)
    static_cast<proxy*>(caf::actor_cast<caf::abstract_actor*>(p))->kill_proxy(nullptr, reason);
  for (auto& r : requests)
    answer_locally(r, caf::make_message(reason));
  for (auto& cb : spawns)
    cb(caf::expected<caf::actor>{reason});
  detach_monitors(this, monitored);
  for (auto& fn : on_failed)
    fn(reason);
}

void peer::on_failed(std::function<void(const caf::error&)> fn) {
  caf::error reason;
  {
    std::lock_guard guard{mtx_};
    if (!failed_) {
      on_failed_.push_back(std::move(fn));
      return;
    }
    reason = fail_reason_;
  }
  fn(reason);
}

void peer::send_heartbeat() {
  wire::frame_out out;
  wire::pack_heartbeat(out.buf);
  send_frame(std::move(out));
}

// ---- references ------------------------------------------------------------------------

wire::actor_ref peer::export_actor(const caf::strong_actor_ptr& actor) {
  // typeid before the cast: a dynamic_cast walks the whole class tree of every actor that
  // sends (a scoped_actor's is deep), and this runs for every message a local actor sends.
  if (typeid(*actor->get()) == typeid(proxy)) {
    auto* p = static_cast<proxy*>(actor->get());
    // A proxy for one of the peer's own actors travels back as the original reference.
    if (p->via().get() == this)
      return {peer_node(), p->remote_id()};
    // A proxy for a third process's actor: only this peer will hold it, by its local id.
    std::vector<caf::strong_actor_ptr> dropped;  // released after the lock
    std::lock_guard guard{mtx_};
    if (!failed_) {
      reexports_.emplace(actor->id(), actor);
      sweep_reexports_locked(dropped);
    }
  }
  return node_.export_actor(actor);
}

void peer::sweep_reexports_locked(std::vector<caf::strong_actor_ptr>& dropped) {
  // Proxies of processes that ended (one per short-lived child that ever sent to this peer
  // through here) would otherwise stay until this link closes: forgotten now and then, at
  // twice the count that lived after the last sweep.
  if (reexports_.size() < reexports_swept_at_)
    return;
  for (auto i = reexports_.begin(); i != reexports_.end();) {
    if (static_cast<proxy*>(i->second->get())->killed()) {  // its process is gone
      dropped.push_back(std::move(i->second));
      i = reexports_.erase(i);
    } else {
      ++i;
    }
  }
  reexports_swept_at_ = std::max<std::size_t>(64, 2 * reexports_.size());
}

caf::strong_actor_ptr peer::import_actor(wire::actor_ref ref) {
  if (ref.empty())
    return nullptr;
  if (ref.node == node_.id())
    return node_.local_actor(ref.actor);
  if (ref.node == peer_node())
    return proxy_for(ref.actor);
  // Never encoded by mproc: references to third nodes travel as proxies of the sender.
  log::warn("process ", who().pid, " sent a reference to unknown node ", ref.node);
  return nullptr;
}

caf::strong_actor_ptr peer::proxy_for(std::uint64_t remote_actor) {
  caf::strong_actor_ptr result;
  caf::error dead;
  {
    std::lock_guard guard{mtx_};
    auto& slot = proxies_[remote_actor];
    if ((result = slot.lock()))
      return result;
    auto& sys = node_.system();
    caf::actor_config cfg;
    result = caf::make_actor<proxy, caf::strong_actor_ptr>(sys.next_actor_id(), sys.node(), &sys,
                                                            cfg, shared_from_this(), remote_actor);
    slot = caf::weak_actor_ptr{result.get()};
    if (failed_)
      dead = fail_reason_;
  }
  if (dead)  // references that arrive after the peer failed are dead on arrival
    static_cast<proxy*>(result->get())->kill_proxy(nullptr, dead);
  return result;
}

void peer::forget(std::uint64_t remote_actor, const proxy* p) {
  std::lock_guard guard{mtx_};
  auto i = proxies_.find(remote_actor);
  // No strong reference here: releasing one under mtx_ could destroy a proxy, whose
  // destructor calls forget() again.
  if (i != proxies_.end() && (expired(i->second) || i->second.get()->get() == p))
    proxies_.erase(i);
}

namespace {

// The cached actor if it is `id`'s and still alive, else `find(id)`, then cached. Held
// until the frames of the current read are handled; the reference stays valid until then
// or the next call for the same `recent`.
template <class Recent, class Find>
const caf::strong_actor_ptr& cached(std::uint64_t id, Recent& recent, Find find) {
  if (recent.id == id && (recent.held || (recent.held = recent.actor.lock())))
    return recent.held;
  recent.held = find(id);
  recent.id = recent.held ? id : 0;
  recent.actor = caf::weak_actor_ptr{recent.held.get()};
  return recent.held;
}

const caf::strong_actor_ptr no_actor;

} // namespace

const caf::strong_actor_ptr& peer::local_target(wire::actor_ref to) {
  if (to.node != node_.id())
    return no_actor;
  // Actor ids are never reused, and an export leaves the table only once its actor is gone.
  return cached(to.actor, recent_target_, [&](std::uint64_t id) { return node_.local_actor(id); });
}

void peer::release_recent() {
  recent_target_.held = nullptr;
  recent_sender_.held = nullptr;
}

caf::strong_actor_ptr peer::sender_of(wire::actor_ref from) {
  if (from.empty() || from.node != peer_node())
    return import_actor(from);
  // The table's proxy for an id changes only once the previous one is gone, or at the
  // actor's down, which forgets the cached one too.
  return cached(from.actor, recent_sender_, [&](std::uint64_t id) { return proxy_for(id); });
}

} // namespace mproc::detail
