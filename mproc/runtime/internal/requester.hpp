// The node's one sender of blocking requests from plain code (node::request).
//
// A request used to make a scoped_actor per call: a new actor, a new export in this node,
// and a new proxy in the receiving process, every time, with the reply going through the
// scoped actor's mailbox. The requester is one long-lived actor: a call enqueues its request
// straight into the destination (a proxy writes the frame in the caller's thread), and the
// reply, enqueued into the requester by whoever answers (the I/O thread for a remote actor),
// wakes the waiting caller directly. The receiving process sees one sender and keeps one
// proxy for it.
//
// A caller busy-waits (spins, or polls the loop: below) for up to `spin_gauge::limit` after
// its request went, then sleeps, while replies come that fast. Here
// (2 vCPUs) a local round trip takes 20-40 µs and waking a sleeping caller adds ~15 µs to it
// (pingpong p50 41 -> 24 µs). The limit, 100 µs, also covers a round trip over TCP with TLS
// on this host (45-65 µs; with 50 µs such callers slept on every call: tcp_pingpong p50
// 63-64 -> 52 µs, context switches 64 K -> 44 K per 22 K calls, under perf stat), and a
// sleep and wake-up cost the VM about as much CPU (50-80 µs) as the longest spin. It never
// spins with one CPU to run on (the spin would hold up the reply), nor after a reply that
// took longer than the limit until a streak of fast ones (spin_gauge: an actor that works
// for a while before it answers, or more callers than CPUs).
// A caller whose reply comes through the loop leads the loop itself while it waits, when
// the loop is left to callers (io_loop::lead_for): the reply then wakes no third thread.
// With one CPU it waits there instead of sleeping; with more only while it would spin, and
// polling.
// It sleeps on a futex word in its call, which the thread bringing the reply sets and wakes
// outside the requester's lock: woken under the lock, the caller went straight back to
// sleep on it (two wake-ups per reply). The word says whether the caller sleeps: a reply
// that finds it still spinning makes no wake-up call.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>
#include <unordered_map>

#include <caf/expected.hpp>
#include <caf/fwd.hpp>
#include <caf/message.hpp>
#include <caf/monitorable_actor.hpp>

#include "mproc/runtime/internal/spare_node.hpp"
#include "mproc/runtime/spin.hpp"

namespace mproc::detail {

class io_loop;

class requester final : public caf::monitorable_actor {
public:
  explicit requester(caf::actor_config& cfg);

  // Replies to a waiting call; everything else sent here is dropped.
  void enqueue(caf::mailbox_element_ptr what, caf::execution_unit* host) override;

  // Sends `msg` to `dest` as a request from this actor and waits for the reply: its content,
  // or the error it carries, or errc::timeout.
  caf::expected<caf::message> request(const caf::actor& dest, caf::message msg,
                                      std::chrono::nanoseconds timeout);

  // Fails every waiting call with `why`, refuses new ones, and ends the actor (node
  // shutdown).
  void stop(caf::error why);
  // The node's loop, which a caller leads while it waits (io_loop::lead_for).
  void use_loop(io_loop* loop) { loop_ = loop; }

  // Fails the call waiting for `request_id`, if one still does: its receiver ended before
  // it answered (requester.cpp, receiver_watch).
  void receiver_ended(std::uint64_t request_id, const caf::error& reason);
  // Whether a call still waits for the reply to `request_id` (false once it timed out).
  bool waiting(std::uint64_t request_id);

private:
  struct call {
    std::optional<caf::message> reply;
    // A futex word: pending, then answered once `reply` is set; sleeping while the caller
    // sleeps on it (or is about to), so that only then the answer makes the wake-up call;
    // leading while the caller leads the loop, so that an answer from another thread wakes
    // it there (in one word: the caller's move and the answer's see each other).
    static constexpr std::uint32_t pending = 0, answered = 1, sleeping = 2, leading = 3;
    std::atomic<std::uint32_t> ready{pending};
    bool done() const noexcept { return ready.load(std::memory_order_acquire) == answered; }
    std::chrono::steady_clock::time_point replied;  // when the reply came (not when seen)
    // Its caller would lead the loop (a reply through the loop, and one CPU or replies that
    // come fast): the loop thread answering it leaves the loop to callers after its batch.
    // Set before the request goes.
    bool would_lead = false;
    bool loop_left = false;  // the loop thread answering it leaves the loop to callers
    std::chrono::steady_clock::time_point deadline;    // it gives up
    std::chrono::steady_clock::time_point busy_until;  // it stops spinning or polling
  };

  static_assert(std::atomic<std::uint32_t>::is_always_lock_free
                  && sizeof(std::atomic<std::uint32_t>) == sizeof(std::uint32_t),
                "a futex word must be a plain 32-bit word");

  void answer(call& c, caf::message reply) noexcept;
  // `remote`: `dest` is a proxy (of an actor in another process).
  bool wait_for(call& c, const caf::actor& dest, bool remote, std::uint64_t id);
  bool lead_until_answered(call& c, std::uint64_t id);
  bool others_wait();
  void busy_wait(call& c, std::uint64_t id);
  static bool sleep_for(call& c, std::chrono::steady_clock::time_point deadline);
  bool gave_up(std::uint64_t request_id);

  std::mutex mtx_;
  using call_map = std::unordered_map<std::uint64_t, call*>;
  call_map calls_;  // by request id; each on its caller's stack
  spare_node<call_map> spare_;
  std::uint64_t last_id_ = 0;
  std::optional<caf::error> stopped_;
  spin_gauge latency_;  // of recent round trips: the time the reply took, not the wake-up
  io_loop* loop_ = nullptr;
};

} // namespace mproc::detail
