// A peer's outgoing side: messages forwarded from proxies (sends, requests with their
// pending table, responses), spawns, lookups, monitors, downs, shutdown. Part of peer.
#include "mproc/runtime/internal/peer.hpp"

#include <unistd.h>

#include <memory>
#include <optional>
#include <typeinfo>

#include <caf/actor_cast.hpp>
#include <caf/actor_system.hpp>
#include <caf/exit_reason.hpp>
#include <caf/blocking_actor.hpp>
#include <caf/make_actor.hpp>
#include <caf/scheduled_actor.hpp>
#include <caf/scoped_execution_unit.hpp>

#include "mproc/runtime/errors.hpp"
#include "mproc/runtime/log.hpp"
#include "mproc/runtime/internal/caf_threads.hpp"
#include "mproc/runtime/internal/inline_runner.hpp"
#include "mproc/runtime/internal/node_impl.hpp"
#include "mproc/runtime/internal/proxy.hpp"
#include "mproc/runtime/internal/requester.hpp"

namespace mproc::detail {

namespace {

bool is_error_reply(const caf::message& msg) {
  return msg.size() == 1 && msg.match_element<caf::error>(0);
}

// Packs `msg` into `out`; its large payloads go out from where they lie, so the frame keeps
// the message (shared, copy-on-write: nobody changes it meanwhile) until it is written.
bool pack_message(wire::frame_out& out, const caf::message& msg, wire::codec_state& st) {
  wire::packer pk{out.buf};
  if (!encode_message(pk, msg, st))
    return false;
  if (!out.borrowed.empty())
    out.keep = std::make_shared<const caf::message>(msg);
  if (out.fds.size() > wire::max_fds_per_frame)
    return st.fail("a message carries at most " + std::to_string(wire::max_fds_per_frame)
                   + " pipe ends");
  return true;
}

} // namespace

// ---- outgoing --------------------------------------------------------------------------

caf::error peer::send_frame(wire::frame_out&& frame, link::flow kind) {
  auto size = frame.payload_size();
  std::uint32_t limit = max_frame_.load(std::memory_order_acquire);
  if (size > limit)
    return make_error(errc::frame_too_large, "a message of " + std::to_string(size)
                                               + " bytes exceeds the receiver's maximum frame of "
                                               + std::to_string(limit)
                                               + " bytes (node_options::max_frame)");
  wire::end_frame(frame);
  if (!frame.fds.empty())
    wire::prepend_fds_frame(frame);
  auto sent = link_->write(std::move(frame), kind);  // takes the bytes; the settle steps stay
  frame.settled(sent == link::written::queued);
  if (sent == link::written::closed)
    return make_error(errc::link_lost, "the connection to process " + std::to_string(who().pid)
                                         + " is closed");
  if (sent == link::written::no_room)
    return make_error(errc::timeout, "the connection to process " + std::to_string(who().pid)
                                       + " stayed full until the deadline (it stopped reading)");
  return {};
}

namespace {

// Whether `p`'s dynamic type derives from T, remembered for the last dynamic type this thread
// asked about. A dynamic_cast that fails walks the whole class tree comparing type names
// (with strcmp: type names are not merged across libraries); asked several times for every
// message sent, it took a fifth of a one-way sender's time (perf). One sender, one type:
// the memo almost always hits, and a miss costs one cast.
template <class T, class Base>
bool is_a(Base* p) {
  if (p == nullptr)
    return false;
  struct memo {
    const std::type_info* type = nullptr;
    bool yes = false;
  };
  thread_local memo last;
  const auto* type = &typeid(*p);
  if (type != last.type) {
    last.yes = dynamic_cast<T*>(p) != nullptr;
    last.type = type;
  }
  return last.yes;
}

// Whether a message may wait for room on a full link. Not when an event-based actor sends it
// (on a scheduler thread, a loop thread, or a thread of its own: the in-process manager), nor
// anything sent from CAF's scheduler and clock threads or a loop thread running actors (an
// anon_send in a handler, a delayed message from the clock): a blocked scheduler or clock
// thread can stall every actor and timer of this node, the one that would end the stall
// among them. Plain threads wait (anon_send, node::request until its deadline), and so do
// blocking actors (a scoped_actor, a child's main blocking actor), but not for their
// requests, whose timeout is CAF's and would not end the wait. (`host` does not tell these
// apart: CAF runs blocking and detached actors on scoped execution units alike.)
bool may_wait(const caf::mailbox_element& what, caf::execution_unit* host) {
  auto* sender = what.sender ? what.sender->get() : nullptr;
  if (is_a<requester>(sender))
    return true;  // node::request: until its own deadline, on whatever thread it blocks
  if (on_caf_scheduler_thread() || inline_runner::current() != nullptr)
    return false;
  if (host != nullptr && !is_a<caf::scoped_execution_unit>(host))
    return false;  // a scheduler worker or a loop thread's runner: an actor sends
  if (is_a<caf::scheduled_actor>(sender))
    return false;
  return !(what.mid.is_request() && is_a<caf::blocking_actor>(sender));
}

} // namespace

void peer::forward(proxy& via, caf::mailbox_element_ptr what, caf::execution_unit* host) {
  std::optional<link::write_deadline> from_actor;
  if (!may_wait(*what, host))
    from_actor.emplace(std::chrono::steady_clock::time_point::min());
  auto mid = what->mid;
  auto sender = std::move(what->sender);
  auto msg = what->move_content_to_message();
  wire::actor_ref to{peer_node(), via.remote_id()};
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
  wire::frame_out out;
  if (mid.is_request())
    wire::pack_request_head(out.buf, to, from, mid.request_id().integer_value());
  else
    wire::pack_send_head(out.buf, to, from);
  auto st = out.state(this, carries_fds());
  if (!pack_message(out, msg, st)) {
    log::warn("message to process ", who().pid, " dropped: ", st.error);
    return;
  }
  if (auto err = send_frame(std::move(out), link::flow::data))
    log::warn("message to process ", who().pid, " dropped: ", system().render(err));
}

void peer::forward_request(proxy& via, wire::actor_ref to, wire::actor_ref from,
                           caf::strong_actor_ptr sender, caf::message_id mid,
                           const caf::message& msg) {
  auto request = mid.request_id().integer_value();
  auto sender_id = sender->id();
  pending_request pending{caf::weak_actor_ptr{sender.get()}, mid, caf::strong_actor_ptr{via.ctrl()}};
  wire::frame_out out;
  wire::pack_request_head(out.buf, to, from, request);
  auto st = out.state(this, carries_fds());
  if (!pack_message(out, msg, st)) {
    answer_locally(pending, caf::make_message(make_error(errc::unknown_message_type, st.error)));
    return;
  }
  request_key key{sender_id, request};
  caf::error dead;
  std::vector<pending_request> swept;  // destroyed after the lock: it may hold the last
                                       // reference to a proxy, whose end locks mtx_
  {
    std::lock_guard guard{mtx_};
    if (failed_) {
      dead = fail_reason_;
    } else {
      spare_request_.put(requests_, key, pending);  // before writing: the reply may beat us back
      sweep_requests_locked(swept);
    }
  }
  if (dead) {
    answer_locally(pending, caf::make_message(std::move(dead)));
    return;
  }
  auto err = send_frame(std::move(out), link::flow::data);
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
  wire::frame_out out;
  wire::pack_response_head(out.buf, to, from, request, ok);
  auto st = out.state(this, carries_fds());
  if (ok) {
    pack_message(out, msg, st);
  } else {
    st.borrowed = nullptr;  // an error is small, and nothing would keep its context alive
    wire::packer pk{out.buf};
    encode_error(pk, msg.get_as<caf::error>(0), st);
  }
  // The requester waits for an answer: if the real one cannot cross, it learns why.
  auto err = st.ok() ? send_frame(std::move(out), link::flow::data)
                     : make_error(errc::unknown_message_type, "the reply cannot be sent: " + st.error);
  if (err && code_of(err) != errc::link_lost)
    respond_error(to, from, request, err);
}

void peer::respond_error(wire::actor_ref to, wire::actor_ref from, std::uint64_t request,
                         const caf::error& reason) {
  wire::frame_out out;
  wire::pack_response_head(out.buf, to, from, request, false);
  wire::packer pk{out.buf};
  wire::codec_state st{this, {}};
  encode_error(pk, reason, st);
  send_frame(std::move(out));
}

void peer::watch(proxy& p) {
  {
    std::lock_guard guard{mtx_};
    if (failed_)
      return;  // fail() has killed it, or will find it in proxies_
    watched_.emplace(p.remote_id(), caf::strong_actor_ptr{p.ctrl()});
  }
  wire::frame_out out;
  wire::pack_monitor(out.buf, {peer_node(), p.remote_id()});
  send_frame(std::move(out));
}

void peer::send_down(wire::actor_ref actor, const caf::error& reason) {
  // The frame and what failed in packing it, "" when nothing did.
  auto down_frame = [&](const caf::error& why) {
    std::pair<wire::frame_out, std::string> made;
    wire::pack_down_head(made.first.buf, actor);
    wire::packer pk{made.first.buf};
    wire::codec_state st{this, {}};
    st.depth = 1;  // inside the envelope
    wire::codec<caf::error>::encode(pk, why, st);
    made.second = std::move(st.error);
    return made;
  };
  auto [out, failed] = down_frame(reason);
  if (failed.empty()) {
    send_frame(std::move(out));
    return;
  }
  // A context that cannot cross (nested deeper than a receiver reads): the monitor still
  // learns of the end, and of the reason's code, without it.
  auto bare = caf::error{reason.code(), reason.category(), caf::make_message(failed)};
  send_frame(std::move(down_frame(bare).first));
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
  wire::frame_out out;
  wire::pack_spawn_head(out.buf, *request, actor, main);
  auto st = out.state(this, carries_fds());
  if (!pack_message(out, args, st)) {
    settle_sent(*request, make_error(errc::unknown_message_type, "spawn arguments: " + st.error));
    return;
  }
  // A new child's main spawn goes out before its hello, when only the protocol's 1 MiB is
  // known of its limit: larger arguments wait for the hello (Python takes any size). Once
  // the hello came, this runs at once, and a frame still too large fails as any other.
  if (out.payload_size() > max_frame_.load(std::memory_order_acquire)) {
    auto held = std::make_shared<wire::frame_out>(std::move(out));
    when_introduced([self = shared_from_this(), held, id = *request] {
      self->settle_sent(id, self->send_frame(std::move(*held)));
    });
    return;
  }
  settle_sent(*request, send_frame(std::move(out)));
}

void peer::settle_sent(std::uint64_t request, const caf::error& err) {
  // A dead link answers the spawn when it is settled, with the peer's exit status.
  if (!err || code_of(err) == errc::link_lost)
    return;
  if (auto cb = take_answer(request))
    cb(caf::expected<caf::actor>{err});
}

void peer::lookup(std::string_view name, lookup_callback done) {
  auto request = expect_answer(std::move(done));
  if (!request)
    return;
  wire::frame_out out;
  wire::pack_lookup(out.buf, *request, name);
  settle_sent(*request, send_frame(std::move(out)));
}

void peer::send_shutdown(std::string_view why) {
  wire::frame_out out;
  wire::pack_shutdown(out.buf, why);
  send_frame(std::move(out));
}

void peer::answer_locally(const pending_request& p, caf::message reply) {
  if (auto requester = p.requester.lock())
    requester->enqueue(caf::make_mailbox_element(p.proxy, p.mid.response_id(), {},
                                                 std::move(reply)),
                       inline_runner::current());
}

void peer::sweep_requests_locked(std::vector<pending_request>& swept) {
  // Requesters that ended, and node::request calls that timed out (the node's requester
  // lives on), leave entries no reply will claim.
  if (requests_.size() < requests_swept_at_)
    return;
  for (auto i = requests_.begin(); i != requests_.end();) {
    const auto& p = i->second;
    if (expired(p.requester) || node_.gave_up(p.requester, p.mid)) {
      swept.push_back(std::move(i->second));
      i = requests_.erase(i);
    } else {
      ++i;
    }
  }
  requests_swept_at_ = std::max<std::size_t>(64, 2 * requests_.size());
}

} // namespace mproc::detail
