// The untyped queue handle (queue_core, queue.hpp): the queue actor it names and this
// process's one client of it, which its calls go to.
#include <algorithm>
#include <mutex>
#include <unordered_map>

#include "mproc/actors/addr_hash.hpp"
#include "mproc/actors/queue.hpp"
#include "mproc/actors/queue_client.hpp"
#include "mproc/actors/queue_exit.hpp"
#include "mproc/actors/queue_protocol.hpp"
#include "mproc/actors/queue_server.hpp"
#include "mproc/runtime/deadline.hpp"
#include "mproc/runtime/node.hpp"

namespace mproc::detail {

namespace {

using millis = std::chrono::milliseconds;
using clock_type = std::chrono::steady_clock;

// The one client of queue `q` in this process, however many times a handle to it arrived
// through one link (a spawn argument and a message, a lookup beside the original): the
// queue knows a consumer by its client's agent, so two clients of one process would each
// wait, on a closed queue, for what the other holds (docs/queue.md, point 6). A handle
// that arrives after the last one went finds the channel its retired agent still sends
// from: one order for this process's puts. A new client is tracked for the process's exit.
std::shared_ptr<queue_client> client_for(const caf::actor& q, std::size_t maxsize) {
  struct known {
    std::weak_ptr<queue_client> client;
    std::weak_ptr<queue_channel> channel;
  };
  // Never destroyed: a handle may still arrive while the program's statics go.
  static auto* m = new std::mutex;
  static auto* clients = new std::unordered_map<caf::actor_addr, known, addr_hash>;
  std::shared_ptr<queue_client> made;
  {
    std::lock_guard guard{*m};
    std::erase_if(*clients, [](const auto& entry) { return entry.second.channel.expired(); });
    auto& slot = (*clients)[q.address()];
    if (auto client = slot.client.lock())
      return client;
    // Shared once the last client finished leaving: its destructor may still run (another
    // thread dropped it), and its leave would take this client's items and retire its
    // agent. It never waits, so neither does this for long. Not shared when the agent that
    // sent its puts is gone (ended after the exit hook): nothing would send more.
    auto channel = slot.channel.lock();
    if (channel) {
      std::unique_lock channel_lock{channel->m};
      channel->cv.wait(channel_lock, [&] { return !channel->has_client; });
      if (channel->sending && channel->retiring.empty())
        channel.reset();
    }
    made = std::make_shared<queue_client>(q, maxsize, std::move(channel));
    slot = {made, made->channel()};
  }
  track_for_exit(made);
  return made;
}

} // namespace

queue_core::queue_core(node& owner, queue_options options)
  : queue_core(spawn_queue_server(owner.system(), {options.maxsize}), options.maxsize) {
  if (!options.name.empty())
    owner.register_name(options.name, queue_);
}

queue_core queue_core::lookup(node& owner, const std::string& name, millis timeout) {
  // One bound for both steps: the caller's timeout covers the whole lookup.
  auto deadline = deadline_after(timeout);
  auto q = owner.lookup(name, timeout);
  auto reply = owner.request_message(q, caf::make_message(q_size_atom::value),
                                     time_left(deadline));
  if (!reply.match_elements<std::uint64_t, std::uint64_t, bool>()) {
    auto err = make_error(errc::bad_message, "'" + name + "' is not a queue");
    throw error(err, "lookup: '" + name + "' is not a queue");
  }
  return queue_core{std::move(q), static_cast<std::size_t>(reply.get_as<std::uint64_t>(1))};
}

queue_core::queue_core(caf::actor queue, std::size_t maxsize)
  : queue_(std::move(queue)), maxsize_(maxsize), client_(client_for(queue_, maxsize)) {}

queue_client& queue_core::client() const {
  if (!client_)
    throw std::logic_error("operation on an invalid (default-constructed) mproc::queue");
  return *client_;
}

void queue_core::put(std::string_view item, std::optional<millis> timeout) {
  client().put(item, timeout);
}

void queue_core::put_nowait(std::string_view item) {
  client().put_nowait(item);
}

item_run queue_core::get_many(std::size_t max, std::optional<millis> timeout) {
  return client().get_many(max, timeout);
}

item_run queue_core::get_nowait() {
  return client().get_nowait();
}

bool queue_core::untake(const item_run& rest) {
  return client().untake(rest);
}

bool queue_core::poll(std::optional<millis> timeout) {
  return client().poll(timeout);
}

caf::message queue_core::ask(const caf::message& question) const {
  return this_node().request_message(client().actor(), question, std::chrono::seconds{30});
}

std::size_t queue_core::qsize() const {
  auto reply = ask(caf::make_message(q_size_atom::value));
  return static_cast<std::size_t>(reply.get_as<std::uint64_t>(0));
}

queue_stats queue_core::stats() const {
  auto reply = ask(caf::make_message(q_stats_atom::value));
  auto at = [&](std::size_t i) { return reply.get_as<std::uint64_t>(i); };
  return {static_cast<std::size_t>(at(0)), at(1), at(2), at(3)};
}

bool queue_core::closed() const {
  return ask(caf::make_message(q_size_atom::value)).get_as<bool>(2);
}

void queue_core::close() {
  client().close();
}

bool queue_core::flush(std::optional<millis> timeout) {
  return client().flush(timeout);
}

void queue_core::task_done(std::uint64_t n) {
  client().task_done(n);
}

bool queue_core::join(std::optional<millis> timeout) {
  // Items this process put are part of what join waits for; a full queue may hold them back.
  auto deadline = deadline_after(timeout);
  if (!client().flush(timeout) && clock_type::now() >= deadline)
    return false;  // (a refused flush, a closed queue, still waits for the tasks)
  auto left = std::chrono::duration_cast<millis>(time_left(deadline));
  try {
    // The queue is told the timeout too, so that it lets go of a join given up on (for ever,
    // forever_beyond, it takes as no limit).
    this_node().request(client().actor(), std::max(left, millis{1}), q_join_atom::value,
                        static_cast<std::uint64_t>(left.count()));
    return true;
  } catch (const error& e) {
    if (e.code() == errc::timeout)
      return false;
    throw;
  }
}

void queue_core::leave() {
  client().leave();
}

} // namespace mproc::detail
