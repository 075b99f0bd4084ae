// Nodes over TCP: listening, connecting, adopting an authenticated socket as a peer,
// heartbeats, node mode's wait for roots, and ending what a gone root spawned. Part of
// node_impl.
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <future>

#include <caf/send.hpp>

#include "mproc/runtime/deadline.hpp"
#include "mproc/runtime/internal/node_impl.hpp"
#include "mproc/runtime/internal/tls.hpp"
#include "mproc/runtime/log.hpp"

namespace mproc::detail {

// ---- TCP between nodes -----------------------------------------------------------------

std::uint16_t node_impl::listen(const endpoint& at, link_credentials as) {
  auto l = std::make_unique<listener>(loop_, at, std::move(as),
                                      [this](authenticated_socket s, const std::string& from) {
                                        adopt_remote(std::move(s), from);
                                      });
  auto port = l->port();
  auto where = l->address().text();
  {
    std::lock_guard guard{mtx_};
    if (shutting_down_)
      throw error(make_error(errc::node_shutdown, "the node is shutting down"),
                  "the node is shutting down");
    // Posted under the lock: a shutdown's clear of the listeners, posted after it, runs
    // after this start, never before it on a listener already gone.
    auto* raw = l.get();
    listeners_.push_back(std::move(l));
    loop_.post([raw] { raw->start(); });
  }
  log::info("listening for nodes on ", where);
  return port;
}

std::shared_ptr<peer> node_impl::adopt_remote(authenticated_socket s, const std::string& from) {
  auto l = std::make_shared<link>(loop_, s.release(), options_.max_frame, options_.max_link_queue,
                                  std::move(s.tls));
  auto p = std::make_shared<peer>(*this, l, peer::role::remote, 0);
  bool late;
  {
    std::lock_guard guard{mtx_};
    late = shutting_down_;  // close_peers() may have run already: it would not see this one
    peers_.insert(p);
    ++remote_peers_;
    ++remote_peers_ever_;
  }
  p->open([this, from](peer& closed, const std::string& why) {
    log::info("node connection with ", from, " closed: ", why);
    on_peer_closed(closed.shared_from_this(), why);
  });
  if (late) {
    p->close("this node is shutting down");
    return p;
  }
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

std::shared_ptr<peer> node_impl::connect(const endpoint& to, const link_credentials& as,
                                         std::chrono::milliseconds timeout) {
  // Settled once: by the remote hello, by the link failing first, or by the node's end,
  // which also wakes the connecting thread where it waits (resolving, connecting, in the
  // handshake) through `cancel`.
  struct pending {
    std::promise<caf::expected<std::shared_ptr<peer>>> answer;
    std::atomic<bool> settled{false};
    std::weak_ptr<peer> p;  // loop thread
    int cancel = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    ~pending() {
      if (cancel >= 0)
        ::close(cancel);
    }
    void settle(caf::expected<std::shared_ptr<peer>> r) {
      if (settled.exchange(true))
        return;
      answer.set_value(std::move(r));
      std::uint64_t one = 1;
      [[maybe_unused]] auto w = ::write(cancel, &one, sizeof one);
    }
  };
  auto state = std::make_shared<pending>();
  auto refused = [] {
    throw error(make_error(errc::node_shutdown, "connect: the node is shutting down"),
                "connect: the node is shutting down");
  };
  std::uint64_t ticket;
  {
    std::lock_guard guard{mtx_};
    if (shutting_down_)  // its adoption would be posted to a loop that stops
      refused();
    ticket = ++connects_;
    connecting_.emplace(ticket, [state](caf::error why) { state->settle(std::move(why)); });
  }
  struct forget {
    node_impl& node;
    std::uint64_t ticket;
    ~forget() {
      std::lock_guard guard{node.mtx_};
      node.connecting_.erase(ticket);
    }
  } forget_on_return{*this, ticket};
  timeout = capped(timeout);  // milliseconds::max(): for ever, without overflow
  auto deadline = std::chrono::steady_clock::now() + timeout;
  auto socket = std::make_shared<authenticated_socket>(connect_authenticated(to, as, timeout,
                                                                             state->cancel));
  if (state->settled)  // the node began to end meanwhile: the socket closes with `socket`
    refused();
  loop_.post([this, socket, to, state] {
    auto p = adopt_remote(std::move(*socket), to.text());
    state->p = p;
    p->on_failed([state](const caf::error& why) { state->settle(why); });
    p->when_introduced([state, w = std::weak_ptr<peer>{p}] {
      if (auto p = w.lock())
        state->settle(p);
    });
  });
  auto answer = state->answer.get_future();
  io_loop::will_block();
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

// A remote root is gone: what it spawned here ends with it (a process through its starter),
// so a node serving forever does not keep what nobody can use. An actor that registered a
// name stays: it made itself findable by others (docs/distributed.md).
void node_impl::end_spawned_for(const peer& gone) {
  std::vector<caf::weak_actor_ptr> spawned;
  std::vector<caf::actor_id> named;
  {
    std::lock_guard guard{mtx_};
    if (auto i = spawned_for_.find(&gone); i != spawned_for_.end()) {
      spawned.swap(i->second);
      spawned_for_.erase(i);
    }
    for (const auto& [name, actor] : names_)
      named.push_back(actor.id());
  }
  for (const auto& weak : spawned) {
    auto actor = caf::actor_cast<caf::actor>(weak);
    if (actor && std::find(named.begin(), named.end(), actor.id()) == named.end())
      caf::anon_send_exit(actor, caf::exit_reason::user_shutdown);
  }
}

} // namespace mproc::detail
