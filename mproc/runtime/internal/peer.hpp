// A peer: the node at the other end of one link, and everything this node keeps about it —
// its identity (from hello), proxies for its actors, requests awaiting its responses, spawns
// awaiting their answer. When the link goes, fail() answers every one of them with the reason.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <caf/actor.hpp>
#include <caf/error.hpp>
#include <caf/expected.hpp>
#include <caf/fwd.hpp>
#include <caf/mailbox_element.hpp>
#include <caf/message_id.hpp>

#include "mproc/runtime/internal/link.hpp"
#include "mproc/runtime/internal/message_codec.hpp"
#include "mproc/runtime/internal/spare_node.hpp"
#include "mproc/runtime/internal/weak_ref.hpp"
#include "mproc/serialization/envelope.hpp"

namespace mproc::detail {

class node_impl;
class proxy;

class peer final : public wire::context, public std::enable_shared_from_this<peer> {
public:
  enum class role { parent, child, remote };  // what the other side is to this node

  struct identity {
    std::uint64_t node = 0;
    std::int64_t pid = 0;
    std::string name;
  };

  using spawn_callback = std::function<void(caf::expected<caf::actor>)>;
  using lookup_callback = spawn_callback;
  using closed_callback = std::function<void(peer&, const std::string& why)>;

  // `pid` is the peer's process id as far as this node knows before the hello (for logs).
  peer(node_impl& node, std::shared_ptr<detail::link> link, role r, std::int64_t pid);
  ~peer() override;

  // Loop thread: starts reading. `on_closed` runs once when the link closes; the owner then
  // calls fail() with the reason it settles on. (The hello went out in the constructor, so
  // it precedes anything another thread sends once the peer is known.)
  void open(closed_callback on_closed);
  // Loop thread: closes the link (its on_closed follows).
  void close(const std::string& why);
  // Answers everything outstanding with `reason`: kills proxies (their monitors get it as
  // down reason), fails pending requests and spawns. Idempotent.
  void fail(const caf::error& reason);

  role kind() const { return role_; }
  // Loop thread: `fn` runs once the peer's hello has arrived (at once if it has).
  void when_introduced(std::function<void()> fn);
  // Any thread: `fn` runs once with the reason when the peer fails (at once if it has).
  void on_failed(std::function<void(const caf::error&)> fn);
  // When the last frame arrived (or the peer was created). Any thread.
  std::chrono::steady_clock::time_point last_heard() const {
    return std::chrono::steady_clock::time_point{
      std::chrono::steady_clock::duration{last_heard_.load(std::memory_order_relaxed)}};
  }
  // A monitored actor ended: forgotten, and the peer told.
  void monitored_ended(wire::actor_ref actor, const caf::error& reason);
  void send_heartbeat();
  identity who() const;
  // who().node without the lock and the copy: read for every message. 0 before the hello.
  std::uint64_t peer_node() const { return peer_node_.load(std::memory_order_acquire); }
  detail::link& link() { return *link_; }

  // Any thread.
  void forward(proxy& from, caf::mailbox_element_ptr what, caf::execution_unit* host);
  // Asks the peer to report the end of `p`'s actor, and keeps `p` alive until then: a
  // watched proxy must not vanish with its last local handle while the actor lives on.
  void watch(proxy& p);
  void spawn(std::string_view actor, const caf::message& args, bool main, spawn_callback done);
  void send_shutdown(std::string_view why);
  // Asks the peer for the actor registered as `name`; `done` runs on the loop thread.
  void lookup(std::string_view name, lookup_callback done);
  void forget(std::uint64_t remote_actor, const proxy* p);

  // Requests sent through this peer whose replies are still expected (tests).
  std::size_t pending_requests() const {
    std::lock_guard guard{mtx_};
    return requests_.size();
  }

  // wire::context
  wire::actor_ref export_actor(const caf::strong_actor_ptr& actor) override;
  caf::strong_actor_ptr import_actor(wire::actor_ref ref) override;
  caf::actor_system& system() override;

private:
  struct pending_request {
    caf::weak_actor_ptr requester;  // weak: a requester that gave up and ended is swept
    caf::message_id mid;
    caf::strong_actor_ptr proxy;
  };
  using request_key = std::pair<std::uint64_t, std::uint64_t>;  // requester id, request id
  struct key_hash {
    std::size_t operator()(const request_key& k) const { return k.first * 31 + k.second; }
  };

  // Loop thread: the link read something (a frame or part of one): it lives.
  void heard();
  void on_frame(std::string_view payload);
  void on_hello(wire::hello_env& e);
  void on_spawn(wire::spawn_env& e);
  void on_spawned(wire::spawned_env& e);
  void on_send(wire::send_env& e);
  void on_request(wire::request_env& e);
  // Whether this node sent request `request` of its actor `from` through this peer and awaits
  // the answer: the one way a request naming a sender of this node may come back (handed on).
  bool asked_through_here(wire::actor_ref from, std::uint64_t request) const;
  void on_response(wire::response_env& e);
  void on_monitor(wire::monitor_env& e);
  void on_down(wire::down_env& e);
  void on_shutdown(wire::shutdown_env& e);
  void on_lookup(wire::lookup_env& e);
  void on_found(wire::found_env& e);
  // Takes the descriptors that came along for the next frame.
  void on_fds(wire::fds_env& e);
  // A state for decoding the current frame: values find its descriptors there.
  wire::codec_state decoding();
  // A socketpair to a parent or child passes descriptors; TCP does not.
  bool carries_fds() const { return role_ != role::remote; }
  // Shared by spawn and lookup: registers `done` under a new request id.
  std::optional<std::uint64_t> expect_answer(spawn_callback done);
  spawn_callback take_answer(std::uint64_t request);
  // After sending `request`: a failure to send answers it at once (a lost link, later).
  void settle_sent(std::uint64_t request, const caf::error& err);
  void answer(std::uint64_t request, bool ok, wire::actor_ref ref, const wire::error_view& error);

  void forward_send_or_relay(wire::actor_ref to, wire::actor_ref from, caf::message_id mid,
                             const caf::message& msg);
  // Moves the entries no reply will claim to `swept`, for the caller to drop unlocked.
  void sweep_requests_locked(std::vector<pending_request>& swept);
  void sweep_reexports_locked(std::vector<caf::strong_actor_ptr>& dropped);
  void forward_request(proxy& via, wire::actor_ref to, wire::actor_ref from,
                       caf::strong_actor_ptr sender, caf::message_id mid, const caf::message& msg);
  void forward_response(wire::actor_ref to, wire::actor_ref from, caf::message_id mid,
                        const caf::message& msg);

  // Finishes and writes one frame; the error says why it did not go out. link_lost needs no
  // answer from the caller: the link's closure follows, and fail() answers what is pending.
  caf::error send_frame(wire::frame_out&& frame, link::flow kind = link::flow::control);
  void send_down(wire::actor_ref actor, const caf::error& reason);
  // Every attachment of this peer's monitors, off the actors still running.
  static void detach_monitors(const peer* owner,
                              std::unordered_map<std::uint64_t, caf::weak_actor_ptr>& monitored);
  void respond_error(wire::actor_ref to, wire::actor_ref from, std::uint64_t request,
                     const caf::error& reason);
  // Decodes a send's or request's message into a mailbox element, or answers (a request)
  // or logs (a send) why it cannot be read.
  bool decode_or_answer(const msgpack::object& body, caf::mailbox_element_ptr& out,
                        wire::actor_ref from, wire::actor_ref to, std::uint64_t request);
  void answer_locally(const pending_request& p, caf::message reply);
  caf::strong_actor_ptr proxy_for(std::uint64_t remote_actor);
  // Loop thread: the local actor a send or request is for (nullptr: none).
  // Valid while the frame is handled; a copy to keep it longer.
  const caf::strong_actor_ptr& local_target(wire::actor_ref to);
  // Loop thread: import_actor for the sender of a send or request.
  caf::strong_actor_ptr sender_of(wire::actor_ref from);
  // Loop thread, after the frames of a read: the recent actors are held weakly again.
  void release_recent();

  node_impl& node_;
  std::shared_ptr<detail::link> link_;
  const role role_;
  closed_callback on_closed_;
  std::function<void()> introduced_;  // loop thread only
  // Written by the loop thread only; atomic for introspection.
  std::atomic<std::chrono::steady_clock::rep> last_heard_{
    std::chrono::steady_clock::now().time_since_epoch().count()};
  std::atomic<std::uint64_t> peer_node_{0};  // who_.node, set once by the hello
  // The peer's max_frame once its hello came (the protocol's minimum before), read for
  // every frame sent.
  std::atomic<std::uint32_t> max_frame_{wire::min_max_frame};
  // Loop thread: the last target and sender of a send or request. A stream of messages
  // has the same two, and the node's export table and the proxy table each take a lock
  // (12% of a child's loop thread in one-way sends). Weak between reads: the cache keeps
  // nothing alive, and an entry that no longer locks is looked up again. Held strongly
  // (`held`) while the frames of one read are handled: locking a weak reference is a
  // compare-and-swap on a count that the thread running the actor changes too (10% of that
  // loop thread), and a stream of frames then pays it once per read.
  struct recent_actor {
    std::uint64_t id = 0;
    caf::weak_actor_ptr actor;
    caf::strong_actor_ptr held;
  };
  recent_actor recent_target_;
  recent_actor recent_sender_;
  std::vector<int> frame_fds_;  // loop thread: descriptors for the frame being handled
  msgpack::zone zone_;          // loop thread: the frame being handled is unpacked into it

  mutable std::mutex mtx_;  // everything below
  identity who_;
  bool hello_seen_ = false;
  bool failed_ = false;
  caf::error fail_reason_;
  std::unordered_map<std::uint64_t, caf::weak_actor_ptr> proxies_;
  std::unordered_map<std::uint64_t, caf::strong_actor_ptr> watched_;  // until down or fail
  // This node's actors the peer monitors (its `monitor` frames): until each ends, or the
  // link fails, which detaches what is left (a peer's monitors must not outlive it).
  std::unordered_map<std::uint64_t, caf::weak_actor_ptr> monitored_;
  using request_map = std::unordered_map<request_key, pending_request, key_hash>;
  request_map requests_;
  spare_node<request_map> spare_request_;
  std::size_t requests_swept_at_ = 64;
  // Proxies of other peers' actors sent to this peer: nothing else may hold them, and the
  // peer must reach them for as long as the link lives.
  std::unordered_map<std::uint64_t, caf::strong_actor_ptr> reexports_;
  std::size_t reexports_swept_at_ = 64;
  std::unordered_map<std::uint64_t, spawn_callback> answers_;  // spawns and lookups
  std::uint64_t next_answer_ = 1;
  std::vector<std::function<void(const caf::error&)>> on_failed_;
};

} // namespace mproc::detail
