#include "mproc/runtime/remote_node.hpp"

#include <algorithm>
#include <atomic>
#include <future>
#include <optional>

#include <caf/blocking_actor.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/send.hpp>

#include "mproc/runtime/actor_registry.hpp"
#include "mproc/runtime/blocking.hpp"
#include "mproc/runtime/deadline.hpp"
#include "mproc/runtime/errors.hpp"
#include "mproc/runtime/log.hpp"
#include "mproc/runtime/message_bytes.hpp"
#include "mproc/runtime/node.hpp"
#include "mproc/runtime/internal/node_impl.hpp"
#include "mproc/runtime/internal/peer.hpp"

namespace mproc {

namespace {

using answer = std::promise<caf::expected<caf::actor>>;

caf::actor wait_for(std::future<caf::expected<caf::actor>> f, std::chrono::milliseconds timeout,
                    const std::string& what) {
  if (f.wait_for(std::chrono::seconds{0}) != std::future_status::ready)
    will_block();  // the answer comes through this node's loop
  if (f.wait_for(capped(timeout)) != std::future_status::ready) {
    auto why = what + ": no answer within the timeout";
    throw error(make_error(errc::timeout, why), why);
  }
  auto r = f.get();
  if (!r)
    throw error(r.error(), this_node().system().render(r.error()));
  return std::move(*r);
}

// A closed connection answers at once. This node's end closes every connection before its
// loop stops, and a call posted to a stopped loop would never run: its caller would wait out
// the timeout and then hear of a timeout.
void require_open(detail::peer& p, const std::string& what) {
  if (!p.link().closed())
    return;
  auto why = what + ": the connection is closed";
  throw error(make_error(errc::link_lost, why), why);
}

// From the node's callbacks to the starter: its process ended, or never ran. A type of this
// process, never on the wire: as an atom, any peer guessing the starter's id could end it
// early, and its process would no longer go with its root.
struct starter_done {};

} // namespace
} // namespace mproc

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(mproc::starter_done)

namespace mproc {
namespace {

// Runs on the remote node: starts one child process there, answers its actor, and lives as
// long as it. Spawned for a root, it is ended when that root goes (node_impl's
// end_spawned_for), and takes its process along.
caf::behavior mproc_process_starter(caf::event_based_actor* self) {
  auto child = std::make_shared<std::optional<process>>();
  // Set when the starter is told to end: a process still starting then is ended once it has
  // started (terminate() before that has no process to signal).
  auto ending = std::make_shared<std::atomic<bool>>(false);
  self->set_exit_handler([=](caf::exit_msg& m) {
    *ending = true;
    if (*child)
      (*child)->terminate();  // SIGTERM: a process is asked to end as Python's terminate()
    self->quit(m.reason);
  });
  return {
    [=](const std::string& actor, const std::string& name,
        const bytes& args) -> caf::result<caf::actor> {
      if (*child)
        return make_error(errc::bad_arguments, "a process starter starts one process");
      auto rp = self->make_response_promise<caf::actor>();
      try {
        // Daemon: stopped when this node ends, so a node that loses its root leaves no orphans.
        child->emplace(this_node(), actor, process_options{.name = name, .daemon = true},
                       from_bytes(args));
        caf::actor me = caf::actor_cast<caf::actor>(self);
        (*child)->on_exit([me](int) { caf::anon_send(me, starter_done{}); });
        (*child)->start([rp, me, ending, p = **child](caf::error err) mutable {
          if (!err) {
            rp.deliver(p.actor());
            if (*ending)
              p.terminate();  // its root left while it started
            return;
          }
          rp.deliver(std::move(err));
          caf::anon_send(me, starter_done{});  // it never ran: nothing to wait for
        });
      } catch (const error& e) {
        rp.deliver(e.reason());
        self->quit();
      }
      return rp;
    },
    [=](starter_done) { self->quit(); },
  };
}

const bool starter_registered =
  detail::register_actor(detail::make_actor_entry<&mproc_process_starter>("mproc_process_starter"));

} // namespace

remote_node::remote_node(std::shared_ptr<detail::peer> peer, std::string address)
  : peer_(std::move(peer)), address_(std::move(address)), name_(peer_->who().name) {}

std::uint64_t remote_node::id() const {
  return peer_->who().node;
}

std::int64_t remote_node::pid() const {
  return peer_->who().pid;
}

bool remote_node::connected() const {
  return !peer_->link().closed();
}

caf::actor remote_node::spawn_message(std::string_view actor, const caf::message& args,
                                      std::chrono::milliseconds timeout) {
  auto result = std::make_shared<answer>();
  auto name = std::string{actor};
  auto p = peer_;
  require_open(*p, "spawn '" + name + "' on " + address_);
  auto& loop = p->link().loop();
  loop.post([p, name, args, result] {
    p->spawn(name, args, false, [result](caf::expected<caf::actor> r) {
      result->set_value(std::move(r));
    });
  });
  return wait_for(result->get_future(), timeout, "spawn '" + name + "' on " + address_);
}

caf::actor remote_node::spawn_process_message(std::string_view actor, std::string process_name,
                                              const caf::message& args,
                                              std::chrono::milliseconds timeout) {
  (void)starter_registered;
  // One bound for both steps: the caller's timeout covers the whole spawn_process.
  auto deadline = deadline_after(timeout);
  auto starter = spawn_message("mproc_process_starter", {}, timeout);
  caf::message reply;
  try {
    reply = this_node().request_message(
      starter, caf::make_message(std::string{actor}, std::move(process_name), to_bytes(args)),
      time_left(deadline));
  } catch (const error&) {
    // The caller gives up: a process that starts late ends with its starter, not with the
    // connection (which may outlive this call by far).
    caf::anon_send_exit(starter, caf::exit_reason::user_shutdown);
    throw;
  }
  if (!reply.match_elements<caf::actor>()) {
    auto why = "spawn_process '" + std::string{actor} + "' on " + address_ + ": unexpected reply";
    throw error(make_error(errc::protocol_error, why), why);
  }
  return reply.get_as<caf::actor>(0);
}

caf::actor remote_node::lookup(const std::string& name, std::chrono::milliseconds timeout) {
  auto result = std::make_shared<answer>();
  auto p = peer_;
  require_open(*p, "lookup of '" + name + "' on " + address_);
  p->link().loop().post([p, name, result] {
    p->lookup(name, [result](caf::expected<caf::actor> r) { result->set_value(std::move(r)); });
  });
  return wait_for(result->get_future(), timeout, "lookup of '" + name + "' on " + address_);
}

void remote_node::on_down(std::function<void(const std::string&)> fn) {
  peer_->on_failed([fn = std::move(fn)](const caf::error& e) {
    if (code_of(e) == errc::node_shutdown)
      return;  // this node is ending, not that one: nobody is left to reconnect
    // On a thread of its own (an actor of the node, which its end waits for), not the I/O
    // thread that declared the node down: `fn` may connect again, request, join, each of
    // which needs that loop running.
    auto& sys = this_node().system();
    sys.spawn([fn, why = sys.render(e)](caf::blocking_actor*) {
      try {
        fn(why);
      } catch (const std::exception& ex) {
        log::warn("an on_down callback threw: ", ex.what());
      }
    });
  });
}

void remote_node::disconnect() {
  auto p = peer_;
  if (p->link().closed())
    return;  // (this node's loop may have stopped)
  p->link().loop().post([p] { p->close("disconnected"); });
}

} // namespace mproc
