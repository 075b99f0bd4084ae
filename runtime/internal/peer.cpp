#include "runtime/internal/peer.hpp"

#include <unistd.h>

#include <caf/actor_cast.hpp>
#include <caf/actor_system.hpp>
#include <caf/exit_reason.hpp>
#include <caf/make_actor.hpp>

#include "runtime/errors.hpp"
#include "runtime/log.hpp"
#include "runtime/internal/node_impl.hpp"
#include "runtime/internal/proxy.hpp"

namespace mproc::detail {

namespace {

bool is_error_reply(const caf::message& msg) {
  return msg.size() == 1 && msg.match_element<caf::error>(0);
}

template <class... Fs>
struct overloaded : Fs... {
  using Fs::operator()...;
};
template <class... Fs>
overloaded(Fs...) -> overloaded<Fs...>;

} // namespace

peer::peer(node_impl& node, std::shared_ptr<detail::link> link, role r, std::int64_t pid)
  : node_(node), link_(std::move(link)), role_(r) {
  who_.pid = pid;
  wire::buffer buf;
  auto start = wire::begin_frame(buf);
  wire::pack_hello(buf, node_.id(), ::getpid(), node_.name(), node_.options().max_frame);
  send_frame(std::move(buf), start);
}

peer::~peer() = default;

void peer::open(closed_callback on_closed) {
  on_closed_ = std::move(on_closed);
  link_->open([this](std::string_view payload) { on_frame(payload); },
              [w = weak_from_this()](const std::string& why) {
                if (auto self = w.lock())
                  if (auto cb = std::move(self->on_closed_))
                    cb(*self, why);
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
  wire::buffer buf;
  auto start = wire::begin_frame(buf);
  wire::pack_heartbeat(buf);
  send_frame(std::move(buf), start);
}

// ---- outgoing --------------------------------------------------------------------------

caf::error peer::send_frame(wire::buffer&& frame, std::size_t start, link::flow kind) {
  auto size = wire::end_frame(frame, start);
  std::uint32_t limit;
  {
    std::lock_guard guard{mtx_};
    limit = hello_seen_ ? who_.max_frame : wire::min_max_frame;
  }
  if (size > limit)
    return make_error(errc::frame_too_large, "a message of " + std::to_string(size)
                                               + " bytes exceeds the receiver's maximum frame of "
                                               + std::to_string(limit)
                                               + " bytes (node_options::max_frame)");
  if (!link_->write(std::move(frame), kind))
    return make_error(errc::link_lost, "the connection to process " + std::to_string(who().pid)
                                         + " is closed");
  return {};
}

void peer::forward(proxy& via, caf::mailbox_element_ptr what, caf::execution_unit*) {
  auto mid = what->mid;
  auto sender = std::move(what->sender);
  auto msg = what->move_content_to_message();
  wire::actor_ref to{who().node, via.remote_id()};
  wire::actor_ref from = sender ? export_actor(sender) : wire::actor_ref{};
  if (mid.is_response())
    forward_response(to, from, mid, msg);
  else if (mid.is_request() && sender && from.node != to.node)
    forward_request(via, to, from, std::move(sender), mid, msg);
  else  // async, or relayed between two actors of the peer: the reply bypasses this node
    forward_send_or_relay(to, from, mid, msg);
}

void peer::forward_send_or_relay(wire::actor_ref to, wire::actor_ref from, caf::message_id mid,
                                 const caf::message& msg) {
  wire::buffer buf;
  auto start = wire::begin_frame(buf);
  if (mid.is_request())
    wire::pack_request_head(buf, to, from, mid.request_id().integer_value());
  else
    wire::pack_send_head(buf, to, from);
  wire::packer pk{buf};
  wire::codec_state st{this, {}};
  if (!encode_message(pk, msg, st)) {
    log::warn("message to process ", who().pid, " dropped: ", st.error);
    return;
  }
  if (auto err = send_frame(std::move(buf), start, link::flow::data))
    log::warn("message to process ", who().pid, " dropped: ", system().render(err));
}

void peer::forward_request(proxy& via, wire::actor_ref to, wire::actor_ref from,
                           caf::strong_actor_ptr sender, caf::message_id mid,
                           const caf::message& msg) {
  auto request = mid.request_id().integer_value();
  auto sender_id = sender->id();
  pending_request pending{caf::weak_actor_ptr{sender.get()}, mid, caf::strong_actor_ptr{via.ctrl()}};
  wire::buffer buf;
  auto start = wire::begin_frame(buf);
  wire::pack_request_head(buf, to, from, request);
  wire::packer pk{buf};
  wire::codec_state st{this, {}};
  if (!encode_message(pk, msg, st)) {
    answer_locally(pending, caf::make_message(make_error(errc::unknown_message_type, st.error)));
    return;
  }
  request_key key{sender_id, request};
  caf::error dead;
  {
    std::lock_guard guard{mtx_};
    if (failed_) {
      dead = fail_reason_;
    } else {
      requests_.insert_or_assign(key, pending);  // before writing: the reply may beat us back
      sweep_requests_locked();
    }
  }
  if (dead) {
    answer_locally(pending, caf::make_message(std::move(dead)));
    return;
  }
  auto err = send_frame(std::move(buf), start, link::flow::data);
  // A dead link answers the request when it is settled, with the peer's exit status.
  if (!err || code_of(err) == errc::link_lost)
    return;
  std::unique_lock guard{mtx_};
  if (requests_.erase(key) == 1) {
    guard.unlock();
    answer_locally(pending, caf::make_message(std::move(err)));
  }
}

void peer::forward_response(wire::actor_ref to, wire::actor_ref from, caf::message_id mid,
                            const caf::message& msg) {
  auto request = mid.request_id().integer_value();
  bool ok = !is_error_reply(msg);
  wire::buffer buf;
  auto start = wire::begin_frame(buf);
  wire::pack_response_head(buf, to, from, request, ok);
  wire::packer pk{buf};
  wire::codec_state st{this, {}};
  if (ok)
    encode_message(pk, msg, st);
  else
    encode_error(pk, msg.get_as<caf::error>(0), st);
  // The requester waits for an answer: if the real one cannot cross, it learns why.
  auto err = st.ok() ? send_frame(std::move(buf), start, link::flow::data)
                     : make_error(errc::unknown_message_type, "the reply cannot be sent: " + st.error);
  if (err && code_of(err) != errc::link_lost)
    respond_error(to, from, request, err);
}

void peer::respond_error(wire::actor_ref to, wire::actor_ref from, std::uint64_t request,
                         const caf::error& reason) {
  wire::buffer buf;
  auto start = wire::begin_frame(buf);
  wire::pack_response_head(buf, to, from, request, false);
  wire::packer pk{buf};
  wire::codec_state st{this, {}};
  encode_error(pk, reason, st);
  send_frame(std::move(buf), start);
}

void peer::watch(proxy& p) {
  {
    std::lock_guard guard{mtx_};
    if (failed_)
      return;  // fail() has killed it, or will find it in proxies_
    watched_.emplace(p.remote_id(), caf::strong_actor_ptr{p.ctrl()});
  }
  wire::buffer buf;
  auto start = wire::begin_frame(buf);
  wire::pack_monitor(buf, {who().node, p.remote_id()});
  send_frame(std::move(buf), start);
}

void peer::send_down(wire::actor_ref actor, const caf::error& reason) {
  wire::buffer buf;
  auto start = wire::begin_frame(buf);
  wire::pack_down_head(buf, actor);
  wire::packer pk{buf};
  wire::codec_state st{this, {}};
  wire::codec<caf::error>::encode(pk, reason, st);
  send_frame(std::move(buf), start);
}

std::optional<std::uint64_t> peer::expect_answer(spawn_callback done) {
  caf::error dead;
  {
    std::lock_guard guard{mtx_};
    if (!failed_) {
      auto request = next_answer_++;
      answers_.emplace(request, std::move(done));
      return request;
    }
    dead = fail_reason_;
  }
  done(caf::expected<caf::actor>{dead});
  return std::nullopt;
}

peer::spawn_callback peer::take_answer(std::uint64_t request) {
  std::lock_guard guard{mtx_};
  auto i = answers_.find(request);
  if (i == answers_.end())
    return {};
  auto cb = std::move(i->second);
  answers_.erase(i);
  return cb;
}

void peer::spawn(std::string_view actor, const caf::message& args, bool main,
                 spawn_callback done) {
  auto request = expect_answer(std::move(done));
  if (!request)
    return;
  wire::buffer buf;
  auto start = wire::begin_frame(buf);
  wire::pack_spawn_head(buf, *request, actor, main);
  wire::packer pk{buf};
  wire::codec_state st{this, {}};
  caf::error err;
  if (!encode_message(pk, args, st))
    err = make_error(errc::unknown_message_type, "spawn arguments: " + st.error);
  else
    err = send_frame(std::move(buf), start);
  // A dead link answers the spawn when it is settled, with the peer's exit status.
  if (!err || code_of(err) == errc::link_lost)
    return;
  if (auto cb = take_answer(*request))
    cb(caf::expected<caf::actor>{err});
}

void peer::lookup(std::string_view name, lookup_callback done) {
  auto request = expect_answer(std::move(done));
  if (!request)
    return;
  wire::buffer buf;
  auto start = wire::begin_frame(buf);
  wire::pack_lookup(buf, *request, name);
  auto err = send_frame(std::move(buf), start);
  if (!err || code_of(err) == errc::link_lost)
    return;
  if (auto cb = take_answer(*request))
    cb(caf::expected<caf::actor>{err});
}

void peer::send_shutdown(std::string_view why) {
  wire::buffer buf;
  auto start = wire::begin_frame(buf);
  wire::pack_shutdown(buf, why);
  send_frame(std::move(buf), start);
}

void peer::answer_locally(const pending_request& p, caf::message reply) {
  if (auto requester = p.requester.lock())
    requester->enqueue(caf::make_mailbox_element(p.proxy, p.mid.response_id(), {},
                                                 std::move(reply)),
                       nullptr);
}

void peer::sweep_requests_locked() {
  // Requesters that timed out and ended leave entries no reply will claim.
  if (requests_.size() < requests_swept_at_)
    return;
  std::erase_if(requests_, [](const auto& kv) { return expired(kv.second.requester); });
  requests_swept_at_ = std::max<std::size_t>(64, 2 * requests_.size());
}

// ---- references ------------------------------------------------------------------------

wire::actor_ref peer::export_actor(const caf::strong_actor_ptr& actor) {
  if (auto* p = dynamic_cast<proxy*>(actor->get())) {
    // A proxy for one of the peer's own actors travels back as the original reference.
    if (p->via().get() == this)
      return {who().node, p->remote_id()};
    // A proxy for a third process's actor: only this peer will hold it, by its local id.
    std::lock_guard guard{mtx_};
    if (!failed_)
      reexports_.emplace(actor->id(), actor);
  }
  return node_.export_actor(actor);
}

caf::strong_actor_ptr peer::import_actor(wire::actor_ref ref) {
  if (ref.empty())
    return nullptr;
  if (ref.node == node_.id())
    return node_.local_actor(ref.actor);
  if (ref.node == who().node)
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

caf::strong_actor_ptr peer::local_target(wire::actor_ref to) {
  return to.node == node_.id() ? node_.local_actor(to.actor) : nullptr;
}

// ---- incoming --------------------------------------------------------------------------

void peer::on_frame(std::string_view payload) {
  last_heard_ = std::chrono::steady_clock::now();
  wire::decoded_envelope d;
  std::string why;
  if (!wire::decode_envelope(payload, d, why)) {
    log::warn("closing the link to process ", who().pid, ": ", why);
    close("protocol error: " + why);
    return;
  }
  if (!hello_seen_ && !std::holds_alternative<wire::hello_env>(d.env)) {
    close("protocol error: the first frame must be hello");
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
                        [this](wire::found_env& e) { on_found(e); }},
             d.env);
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
  {
    std::lock_guard guard{mtx_};
    who_ = {e.node, e.pid, std::move(e.name), e.max_frame};
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
  else
    introduced_ = std::move(fn);
}

bool peer::decode_or_answer(const msgpack::object& body, caf::message& out, wire::actor_ref from,
                            wire::actor_ref to, std::uint64_t request) {
  wire::codec_state st{this, {}};
  auto status = decode_message(body, out, st);
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
  wire::codec_state st{this, {}};
  caf::expected<caf::actor> result{caf::actor{}};
  if (decode_message(e.args, args, st) != decode_status::ok)
    result = make_error(errc::bad_arguments, "spawn '" + e.actor + "': " + st.error);
  else
    result = node_.spawn_for(*this, e.actor, args, e.main);
  wire::buffer buf;
  auto start = wire::begin_frame(buf);
  if (result) {
    wire::pack_spawned(buf, e.request, export_actor(caf::actor_cast<caf::strong_actor_ptr>(*result)));
  } else {
    wire::pack_spawn_failed_head(buf, e.request);
    wire::packer pk{buf};
    encode_error(pk, result.error(), st);
  }
  send_frame(std::move(buf), start);
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
    wire::buffer buf;
    auto start = wire::begin_frame(buf);
    if (result) {
      wire::pack_found(buf, request,
                       self->export_actor(caf::actor_cast<caf::strong_actor_ptr>(*result)));
    } else {
      wire::pack_not_found_head(buf, request);
      wire::packer pk{buf};
      wire::codec_state st{self.get(), {}};
      encode_error(pk, result.error(), st);
    }
    self->send_frame(std::move(buf), start);
  });
}

void peer::on_send(wire::send_env& e) {
  caf::message msg;
  if (!decode_or_answer(e.message, msg, e.from, e.to, 0))
    return;
  if (auto dest = local_target(e.to))
    dest->enqueue(caf::make_mailbox_element(import_actor(e.from), caf::make_message_id(), {},
                                            std::move(msg)),
                  nullptr);
}

void peer::on_request(wire::request_env& e) {
  if (e.request == 0 || e.request > caf::message_id::request_id_mask) {
    close("protocol error: request id " + std::to_string(e.request) + " outside 1..2^60-1");
    return;
  }
  caf::message msg;
  if (!decode_or_answer(e.message, msg, e.from, e.to, e.request))
    return;
  auto dest = local_target(e.to);
  if (!dest) {
    respond_error(e.from, e.to, e.request,
                  make_error(errc::no_such_actor, "actor " + std::to_string(e.to.actor)
                                                    + " does not exist (any more) in process "
                                                    + std::to_string(::getpid())));
    return;
  }
  dest->enqueue(caf::make_mailbox_element(import_actor(e.from), caf::make_message_id(e.request),
                                          {}, std::move(msg)),
                nullptr);
}

void peer::on_response(wire::response_env& e) {
  pending_request pending;
  {
    std::lock_guard guard{mtx_};
    auto i = requests_.find({e.to.actor, e.request});
    if (i == requests_.end())
      return;  // the requester gave up long ago; CAF would drop the late reply too
    pending = std::move(i->second);
    requests_.erase(i);
  }
  wire::codec_state st{this, {}};
  caf::message reply;
  if (!e.ok) {
    reply = caf::make_message(decode_error(e.error, st));
  } else if (auto status = decode_message(e.message, reply, st); status != decode_status::ok) {
    auto code = status == decode_status::unknown_type ? errc::unknown_message_type
                                                       : errc::bad_message;
    reply = caf::make_message(make_error(code, "the reply cannot be read: " + st.error));
  }
  answer_locally(pending, std::move(reply));
}

void peer::on_monitor(wire::monitor_env& e) {
  auto target = local_target(e.actor);
  if (!target) {
    send_down(e.actor, make_error(errc::no_such_actor, "no such actor"));
    return;
  }
  // Runs at once if the actor already ended.
  target->get()->attach_functor([w = weak_from_this(), ref = e.actor](const caf::error& reason) {
    if (auto self = w.lock())
      self->send_down(ref, reason);
  });
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
