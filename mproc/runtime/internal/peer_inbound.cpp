// A peer's incoming side: one handler per envelope kind, decoding what arrives and
// delivering it to local actors. Part of peer.
#include "mproc/runtime/internal/peer.hpp"

#include <time.h>
#include <unistd.h>

#include <caf/actor_cast.hpp>
#include <caf/actor_system.hpp>
#include <caf/exit_reason.hpp>
#include <caf/make_actor.hpp>

#include "mproc/runtime/errors.hpp"
#include "mproc/runtime/log.hpp"
#include "mproc/runtime/internal/blob_pool.hpp"
#include "mproc/runtime/internal/inline_runner.hpp"
#include "mproc/runtime/internal/node_impl.hpp"
#include "mproc/runtime/internal/proxy.hpp"

namespace mproc::detail {

namespace {

template <class... Fs>
struct overloaded : Fs... {
  using Fs::operator()...;
};
template <class... Fs>
overloaded(Fs...) -> overloaded<Fs...>;

// steady_clock's clock (CLOCK_MONOTONIC) at tick resolution (1–4 ms), which the vDSO reads
// without the time counter: a frame's arrival is stamped for heartbeats, whose silences are
// seconds long, and a full reading per frame took 5% of a child's loop thread in one-way
// sends here (this VM's counter is slow to read).
std::chrono::steady_clock::rep coarse_now() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  auto t = std::chrono::seconds{ts.tv_sec} + std::chrono::nanoseconds{ts.tv_nsec};
  return std::chrono::duration_cast<std::chrono::steady_clock::duration>(t).count();
}

// A peer's monitor of one of this node's actors, found again by its peer to be detached.
class down_notice final : public caf::attachable {
public:
  static constexpr std::size_t token_type = 0x6d70726f;  // mproc's own, beside CAF's 0-3

  down_notice(std::weak_ptr<peer> owner, const peer* key, wire::actor_ref ref)
    : owner_(std::move(owner)), key_(key), ref_(ref) {}

  void actor_exited(const caf::error& reason, caf::execution_unit*) override {
    if (auto p = owner_.lock())
      p->monitored_ended(ref_, reason);
  }

  bool matches(const token& what) override {
    return what.subtype == token_type && what.ptr == key_;
  }

private:
  std::weak_ptr<peer> owner_;
  const peer* key_;
  wire::actor_ref ref_;
};

} // namespace

// ---- incoming --------------------------------------------------------------------------

void peer::heard() {
  last_heard_.store(coarse_now(), std::memory_order_relaxed);
}

void peer::on_frame(std::string_view payload) {
  // A handler may close the link, whose close handler may drop the last other reference.
  auto self = shared_from_this();
  wire::envelope env;
  std::string why;
  if (!wire::decode_envelope(payload, zone_, env, why)) {
    log::warn("closing the link to process ", who().pid, ": ", why);
    close("protocol error: " + why);
    return;
  }
  if (!hello_seen_ && !std::holds_alternative<wire::hello_env>(env)) {
    close("protocol error: the first frame must be hello");
    return;
  }
  if (auto* fds = std::get_if<wire::fds_env>(&env)) {
    on_fds(*fds);
    return;
  }
  std::visit(overloaded{[this](wire::hello_env& e) { on_hello(e); },
                        [this](wire::spawn_env& e) { on_spawn(e); },
                        [this](wire::spawned_env& e) { on_spawned(e); },
                        [this](wire::send_env& e) { on_send(e); },
                        [this](wire::request_env& e) { on_request(e); },
                        [this](wire::response_env& e) { on_response(e); },
                        [this](wire::monitor_env& e) { on_monitor(e); },
                        [this](wire::down_env& e) { on_down(e); },
                        [](wire::heartbeat_env&) {},
                        [this](wire::shutdown_env& e) { on_shutdown(e); },
                        [this](wire::lookup_env& e) { on_lookup(e); },
                        [this](wire::found_env& e) { on_found(e); },
                        [](wire::fds_env&) {}},
             env);
  // Descriptors the frame brought and no value took (a message that was dropped, a reply
  // that came too late): a blob segment's reference goes back.
  for (int fd : std::exchange(frame_fds_, {}))
    if (fd >= 0)
      detail::close_unclaimed(fd);
}

void peer::on_fds(wire::fds_env& e) {
  if (!carries_fds()) {
    close("protocol error: descriptors cannot cross this link");
    return;
  }
  if (!frame_fds_.empty()) {
    close("protocol error: two fds frames in a row");
    return;
  }
  auto fds = link_->take_fds(e.count);
  if (!fds) {
    close("protocol error: the descriptors an fds frame announced did not come with it");
    return;
  }
  frame_fds_ = std::move(*fds);
}

wire::codec_state peer::decoding() {
  wire::codec_state st{this, {}};
  st.descriptors = &frame_fds_;
  return st;
}

void peer::on_hello(wire::hello_env& e) {
  if (hello_seen_) {
    close("protocol error: a second hello");
    return;
  }
  if (e.version != wire::protocol_version) {
    close("protocol version " + std::to_string(e.version) + " is not "
          + std::to_string(wire::protocol_version));
    return;
  }
  // Smaller would leave no room for a message's own envelope (docs/protocol.md, "Frames").
  if (e.max_frame < wire::min_max_frame) {
    close("its hello announces a maximum frame of " + std::to_string(e.max_frame)
          + " bytes, below the protocol's minimum of " + std::to_string(wire::min_max_frame));
    return;
  }
  // Every node holds the same key, so the network can turn a connection back to its own
  // listener (a reflection, RFC 9257 §4): the hello gives it away.
  if (role_ == role::remote && e.node == node_.id()) {
    close("connected to itself (this node's own hello came back)");
    return;
  }
  {
    std::lock_guard guard{mtx_};
    who_ = {e.node, e.pid, std::move(e.name)};
    peer_node_.store(e.node, std::memory_order_release);
    max_frame_.store(e.max_frame, std::memory_order_release);
    hello_seen_ = true;
  }
  if (auto fn = std::exchange(introduced_, nullptr))
    fn();
}

void peer::when_introduced(std::function<void()> fn) {
  bool seen = false;
  {
    std::lock_guard guard{mtx_};
    seen = hello_seen_;
  }
  if (seen)
    fn();
  else if (introduced_)  // both, in the order asked
    introduced_ = [first = std::move(introduced_), then = std::move(fn)] {
      first();
      then();
    };
  else
    introduced_ = std::move(fn);
}

bool peer::decode_or_answer(const msgpack::object& body, caf::mailbox_element_ptr& out,
                            wire::actor_ref from, wire::actor_ref to, std::uint64_t request) {
  auto st = decoding();
  auto status = decode_element(body, out, st);
  if (status == decode_status::ok)
    return true;
  auto code = status == decode_status::unknown_type ? errc::unknown_message_type
                                                     : errc::bad_message;
  if (request != 0)
    respond_error(from, to, request, make_error(code, st.error));
  else
    log::warn("message from process ", who().pid, " dropped: ", st.error);
  return false;
}

void peer::on_spawn(wire::spawn_env& e) {
  caf::message args;
  auto st = decoding();
  caf::expected<caf::actor> result{caf::actor{}};
  if (decode_message(e.args, args, st) != decode_status::ok)
    result = make_error(errc::bad_arguments, "spawn '" + e.actor + "': " + st.error);
  else
    result = node_.spawn_for(*this, e.actor, args, e.main);
  wire::frame_out out;
  if (result) {
    wire::pack_spawned(out.buf, e.request, export_actor(caf::actor_cast<caf::strong_actor_ptr>(*result)));
  } else {
    wire::pack_spawn_failed_head(out.buf, e.request);
    wire::packer pk{out.buf};
    encode_error(pk, result.error(), st);
  }
  send_frame(std::move(out));
}

void peer::on_spawned(wire::spawned_env& e) {
  answer(e.request, e.ok, e.actor, e.error);
}

void peer::on_found(wire::found_env& e) {
  answer(e.request, e.ok, e.actor, e.error);
}

void peer::answer(std::uint64_t request, bool ok, wire::actor_ref ref,
                  const wire::error_view& error) {
  auto cb = take_answer(request);
  if (!cb)
    return;
  if (ok) {
    auto actor = caf::actor_cast<caf::actor>(import_actor(ref));
    if (actor)
      cb(std::move(actor));
    else  // a reference this node cannot resolve: the peer broke the protocol
      cb(caf::expected<caf::actor>{make_error(errc::protocol_error,
                                              "the answer names an unknown actor")});
    return;
  }
  wire::codec_state st{this, {}};
  cb(caf::expected<caf::actor>{decode_error(error, st)});
}

void peer::on_lookup(wire::lookup_env& e) {
  node_.lookup(e.name, [self = shared_from_this(), request = e.request](
                         caf::expected<caf::actor> result) {
    wire::frame_out out;
    if (result) {
      wire::pack_found(out.buf, request,
                       self->export_actor(caf::actor_cast<caf::strong_actor_ptr>(*result)));
    } else {
      wire::pack_not_found_head(out.buf, request);
      wire::packer pk{out.buf};
      wire::codec_state st{self.get(), {}};
      encode_error(pk, result.error(), st);
    }
    self->send_frame(std::move(out));
  });
}

void peer::on_send(wire::send_env& e) {
  caf::mailbox_element_ptr element;
  if (!decode_or_answer(e.message, element, e.from, e.to, 0))
    return;
  if (const auto& dest = local_target(e.to)) {
    element->sender = sender_of(e.from);
    dest->enqueue(std::move(element), inline_runner::current());
  }
}

void peer::on_request(wire::request_env& e) {
  if (e.request == 0 || e.request > caf::message_id::request_id_mask) {
    close("protocol error: request id " + std::to_string(e.request) + " outside 1..2^60-1");
    return;
  }
  // A sender of this node: a request of ours that the peer hands back (an actor there
  // delegated it to one here), answered straight to our sender. Any other would let the
  // peer answer somebody else's pending request (a node::request's, by its sequential id)
  // through one of our actors: dropped, as a frame that cannot be answered anywhere.
  if (e.from.node == node_.id() && !asked_through_here(e.from, e.request)) {
    log::warn("process ", who().pid, " sent request ", e.request, " as if from actor ",
              e.from.actor, " of this process, which asked it no such thing: dropped");
    return;
  }
  caf::mailbox_element_ptr element;
  if (!decode_or_answer(e.message, element, e.from, e.to, e.request))
    return;
  const auto& dest = local_target(e.to);
  if (!dest) {
    respond_error(e.from, e.to, e.request,
                  make_error(errc::no_such_actor, "actor " + std::to_string(e.to.actor)
                                                    + " does not exist (any more) in process "
                                                    + std::to_string(::getpid())));
    return;
  }
  element->sender = sender_of(e.from);
  element->mid = caf::make_message_id(e.request);
  dest->enqueue(std::move(element), inline_runner::current());
}

bool peer::asked_through_here(wire::actor_ref from, std::uint64_t request) const {
  std::lock_guard guard{mtx_};
  return requests_.count({from.actor, request}) == 1;
}

void peer::on_response(wire::response_env& e) {
  pending_request pending;
  {
    std::lock_guard guard{mtx_};
    auto i = requests_.find({e.to.actor, e.request});
    if (i == requests_.end())
      return;  // the requester gave up long ago; CAF would drop the late reply too
    pending = std::move(i->second);  // the node kept holds nothing then
    spare_request_.take(requests_, i);
  }
  auto st = decoding();
  caf::message reply;
  try {
    if (!e.ok) {
      reply = caf::make_message(decode_error(e.error, st));
    } else if (auto status = decode_message(e.message, reply, st); status != decode_status::ok) {
      auto code = status == decode_status::unknown_type ? errc::unknown_message_type
                                                         : errc::bad_message;
      reply = caf::make_message(make_error(code, "the reply cannot be read: " + st.error));
    }
  } catch (const std::bad_alloc&) {
    // The entry is gone already: without an answer here, a caller without timeout would
    // wait for ever (the link's end answers only the entries it still has).
    reply = caf::make_message(
      make_error(errc::bad_message, "the reply does not fit in this process's memory"));
  }
  answer_locally(pending, std::move(reply));
}

void peer::on_monitor(wire::monitor_env& e) {
  auto target = local_target(e.actor);
  if (!target) {
    send_down(e.actor, make_error(errc::no_such_actor, "no such actor"));
    return;
  }
  {
    std::lock_guard guard{mtx_};
    // A second monitor of the same actor adds nothing (one down answers both); a failed
    // link would never detach it.
    if (failed_
        || !monitored_.emplace(e.actor.actor, caf::actor_cast<caf::weak_actor_ptr>(target)).second)
      return;
  }
  // Runs at once if the actor already ended.
  target->get()->attach(std::make_unique<down_notice>(weak_from_this(), this, e.actor));
}

void peer::monitored_ended(wire::actor_ref actor, const caf::error& reason) {
  {
    std::lock_guard guard{mtx_};
    monitored_.erase(actor.actor);
  }
  send_down(actor, reason);
}

void peer::detach_monitors(const peer* owner,
                           std::unordered_map<std::uint64_t, caf::weak_actor_ptr>& monitored) {
  for (auto& [id, weak] : monitored)
    if (auto actor = weak.lock())
      actor->get()->detach(caf::attachable::token{down_notice::token_type, owner});
}

void peer::on_down(wire::down_env& e) {
  caf::strong_actor_ptr p;
  caf::strong_actor_ptr watched;  // released after the kill, outside the lock
  {
    std::lock_guard guard{mtx_};
    if (auto w = watched_.find(e.actor.actor); w != watched_.end()) {
      watched = std::move(w->second);
      watched_.erase(w);
    }
    auto i = proxies_.find(e.actor.actor);
    if (i == proxies_.end())
      return;
    p = i->second.lock();
    proxies_.erase(i);
  }
  // A frame naming the actor as its sender from now on gets a new proxy, as proxy_for gives.
  if (recent_sender_.id == e.actor.actor)
    recent_sender_ = {};
  if (!p)
    return;
  wire::codec_state st{this, {}};
  caf::error reason = e.reason ? decode_error(*e.reason, st) : caf::error{caf::exit_reason::normal};
  static_cast<proxy*>(p->get())->kill_proxy(nullptr, std::move(reason));
}

void peer::on_shutdown(wire::shutdown_env& e) {
  node_.on_shutdown_requested(*this, e.reason);
}

} // namespace mproc::detail
