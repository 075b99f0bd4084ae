// A process's side of a queue: the handle's blocking calls, and the local agent actor that
// talks to the queue actor in batches (Python's feeder thread, in both directions).
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <mutex>
#include <optional>

#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/send.hpp>

#include "actors/queue.hpp"
#include "actors/queue_protocol.hpp"
#include "actors/queue_server.hpp"
#include "runtime/caf_types.hpp"
#include "runtime/node.hpp"

namespace mproc::detail {

namespace {

// Items per batch, either way. Large enough that a batch costs far more than a frame's
// overhead; small enough that a consumer that dies returns little (docs/queue.md).
constexpr std::size_t max_batch = 512;

// How long a leaving process waits for a queue that accepts none of its remaining items
// (full, and nobody taking) before it gives them up. Python would wait forever here.
constexpr auto stalled_flush_limit = std::chrono::seconds{10};

// How long a leaving process waits for the queue to confirm that it took back what the
// process held. Only a queue whose process is alive but stuck takes this long.
constexpr auto leave_timeout = std::chrono::seconds{10};

using millis = std::chrono::milliseconds;
using clock_type = std::chrono::steady_clock;

} // namespace

// What the handle's threads and the agent share. Guarded by `m`.
struct queue_channel {
  std::mutex m;
  std::condition_variable cv;
  // put side
  std::vector<bytes> outbox;  // put() but not yet sent
  std::size_t in_flight = 0;  // items of the batch the queue has not accepted yet
  std::size_t outbox_limit = max_batch;  // on outbox + in_flight: how far a process runs ahead
  bool sending = false;       // a batch is with the queue; the agent sends the next after it
  std::uint64_t accepted = 0; // batches the queue took: progress, for a stalled flush
  caf::error put_error;       // the queue refused (closed) or is gone
  // get side
  std::deque<bytes> inbox;    // fetched, not yet taken
  bool fetching = false;
  std::uint64_t done = 0;     // taken and finished, not yet acknowledged
  std::size_t taken_last = 0; // handed out by the last get: finished at the next one
  caf::error get_error;       // closed (after draining) or gone
  // leaving: the queue takes back what this process did not take; the handle stays usable
  // (a new agent takes over), so leaving at exit does not stop a consumer still running.
  std::uint64_t generation = 0;  // of the current agent; a leave retires it
  std::size_t leaves_pending = 0;  // leaves the queue has not answered yet
  bool queue_gone = false;       // the queue actor ended: every call fails from now on
};

namespace {

void send_next(caf::event_based_actor* self, std::shared_ptr<queue_channel> ch, caf::actor q) {
  std::vector<bytes> batch;
  {
    std::lock_guard guard{ch->m};
    if (ch->sending && ch->in_flight > 0)
      ++ch->accepted;
    batch.swap(ch->outbox);
    ch->in_flight = batch.size();
    if (batch.empty())
      ch->sending = false;
  }
  ch->cv.notify_all();  // the previous batch was accepted: room again, or all went out
  if (batch.empty())
    return;
  self->request(q, caf::infinite, q_put_atom::value, std::move(batch))
    .then([=] { send_next(self, ch, q); },
          [=](caf::error& e) {
            {
              std::lock_guard guard{ch->m};
              ch->put_error = e;
              ch->sending = false;
              ch->in_flight = 0;
              ch->outbox.clear();
            }
            ch->cv.notify_all();
          });
}

// `wait`: the consumer has nothing left and waits at the queue. Otherwise a prefetch, which
// never waits there: a consumer with work in hand must not take new items from others.
// The items taken since the last acknowledgement, now sent along by agent `gen`; nothing
// for a retired agent: its successor sends the counts taken since the leave.
std::optional<std::uint64_t> claim_done(queue_channel& ch, std::uint64_t gen) {
  std::lock_guard guard{ch.m};
  if (ch.generation != gen)
    return std::nullopt;
  return std::exchange(ch.done, 0);
}

void fetch(caf::event_based_actor* self, std::shared_ptr<queue_channel> ch, caf::actor q,
           bool wait, std::uint64_t gen) {
  auto claimed = claim_done(*ch, gen);
  if (!claimed)
    return;
  auto done = *claimed;
  auto max = static_cast<std::uint32_t>(max_batch);
  auto request = wait ? self->request(q, caf::infinite, q_get_atom::value, max, done)
                      : self->request(q, caf::infinite, q_getnow_atom::value, max, done);
  std::move(request).then(
      [=](std::vector<bytes>& items) {
        {
          std::lock_guard guard{ch->m};
          if (ch->generation != gen)
            return;  // sent before a leave: the queue has taken these back already
          for (auto& item : items)
            ch->inbox.push_back(std::move(item));
          ch->fetching = false;
        }
        ch->cv.notify_all();
      },
      [=](caf::error& e) {
        {
          std::lock_guard guard{ch->m};
          if (ch->generation != gen)
            return;
          if (code_of(e) != errc::empty)  // an empty queue only ends a prefetch
            ch->get_error = e;
          ch->fetching = false;
        }
        ch->cv.notify_all();
      });
}

// The process-local agent: the queue knows a consumer by this actor, and watches it.
// The queue ended (its node ended, its process died): nothing will answer any more, so
// every call fails at once and the agent ends with it rather than outlive it.
void on_queue_gone(caf::event_based_actor* self, const std::shared_ptr<queue_channel>& ch) {
  {
    std::lock_guard guard{ch->m};
    auto gone = make_error(errc::closed, "the queue has ended");
    ch->queue_gone = true;
    if (!ch->get_error)
      ch->get_error = gone;
    if (!ch->put_error)
      ch->put_error = gone;
    ch->fetching = false;
    ch->sending = false;
    ch->in_flight = 0;
    ch->outbox.clear();
    ch->leaves_pending = 0;
  }
  ch->cv.notify_all();
  self->quit();
}

caf::behavior queue_agent(caf::event_based_actor* self, std::shared_ptr<queue_channel> ch,
                          caf::actor q, std::uint64_t gen) {
  self->monitor(q);
  self->set_down_handler([=](caf::down_msg&) { on_queue_gone(self, ch); });
  return {
    [=](q_flush_atom) { send_next(self, ch, q); },
    [=](q_fetch_atom, bool wait) { fetch(self, ch, q, wait, gen); },
    [=](q_cancel_atom) { self->send(q, q_cancel_atom::value); },
    // Asked by get_nowait(). The agent asks the queue itself (a delegate would keep the
    // caller as sender), so the item is held by this agent and acknowledged with the rest.
    [=](q_getnow_atom) {
      auto rp = self->make_response_promise<std::vector<bytes>>();
      auto done = claim_done(*ch, gen);
      if (!done) {
        rp.deliver(make_error(errc::empty, "this process left the queue meanwhile"));
        return rp;
      }
      self->request(q, caf::infinite, q_getnow_atom::value, std::uint32_t{1}, *done)
        .then([=](std::vector<bytes>& items) mutable { rp.deliver(std::move(items)); },
              [=](caf::error& e) mutable { rp.deliver(std::move(e)); });
      return rp;
    },
    [=](q_leave_atom, std::uint64_t done) {
      auto finish = [=] {
        {
          std::lock_guard guard{ch->m};
          --ch->leaves_pending;
        }
        ch->cv.notify_all();
        self->quit();
      };
      self->request(q, leave_timeout, q_leave_atom::value, done)
        .then([=] { finish(); }, [=](caf::error&) { finish(); });
    },
  };
}

} // namespace

class queue_client {
public:
  queue_client(caf::actor q, std::size_t maxsize)
    : queue_(std::move(q)), ch_(std::make_shared<queue_channel>()) {
    if (maxsize != 0)  // a process never holds more unsent items than the queue may
      ch_->outbox_limit = std::min(max_batch, maxsize);
  }

  ~queue_client() {
    try {
      leave();
    } catch (...) {
      // A destructor must not throw; leave() only throws if the node is gone.
    }
  }

  void put(bytes item, std::optional<millis> timeout) {
    std::unique_lock lock{ch_->m};
    auto room = [&] {
      return ch_->outbox.size() + ch_->in_flight < ch_->outbox_limit || ch_->put_error;
    };
    if (!wait(lock, timeout, room))
      throw error(make_error(errc::full, "the queue is full"),
                  "put: the queue stayed full for " + std::to_string(timeout->count()) + " ms");
    if (ch_->put_error)
      throw error(ch_->put_error, "put: " + render(ch_->put_error));
    ch_->outbox.push_back(std::move(item));
    if (!ch_->sending) {
      ch_->sending = true;
      caf::anon_send(agent_locked(), q_flush_atom::value);
    }
  }

  void put_nowait(bytes item) {
    flush(std::nullopt);  // keeps this process's items in order
    std::vector<bytes> one;
    one.push_back(std::move(item));
    this_node().request(queue_, std::chrono::seconds{30}, q_putnow_atom::value, std::move(one));
  }

  std::vector<bytes> get_many(std::size_t max, std::optional<millis> timeout) {
    std::unique_lock lock{ch_->m};
    finish_taken_locked();
    if (!wait_for_items(lock, timeout))
      throw error(make_error(errc::empty, "the queue is empty"),
                  "get: no item within " + std::to_string(timeout->count()) + " ms");
    if (ch_->inbox.empty())
      throw error(ch_->get_error, "get: " + render(ch_->get_error));
    auto n = std::min(std::max<std::size_t>(max, 1), ch_->inbox.size());
    std::vector<bytes> items;
    items.reserve(n);
    for (std::size_t i = 0; i < n; ++i) {
      items.push_back(std::move(ch_->inbox.front()));
      ch_->inbox.pop_front();
    }
    ch_->taken_last = n;
    if (ch_->inbox.size() < max_batch / 2)  // prefetch while the consumer works
      fetch_locked(false);
    return items;
  }

  bytes get_nowait() {
    {
      std::unique_lock lock{ch_->m};
      finish_taken_locked();
      if (!ch_->inbox.empty()) {
        auto item = std::move(ch_->inbox.front());
        ch_->inbox.pop_front();
        ch_->taken_last = 1;
        return item;
      }
    }
    // Through the agent: the queue must know who holds the item.
    auto items = this_node().request<std::vector<bytes>>(agent(), std::chrono::seconds{30},
                                                         q_getnow_atom::value);
    std::lock_guard guard{ch_->m};
    ch_->taken_last = items.size();
    return std::move(items.front());
  }

  bool poll(std::optional<millis> timeout) {
    std::unique_lock lock{ch_->m};
    return wait_for_items(lock, timeout);
  }

  bool flush(std::optional<millis> timeout) {
    std::unique_lock lock{ch_->m};
    auto flushed = [&] { return (ch_->outbox.empty() && !ch_->sending) || ch_->put_error; };
    return wait(lock, timeout, flushed) && !ch_->put_error;
  }

  // This process closed the queue: its own later puts fail at once (others' fail when the
  // queue refuses their next batch).
  void closed_here() {
    std::lock_guard guard{ch_->m};
    if (!ch_->put_error)
      ch_->put_error = make_error(errc::closed, "the queue is closed");
  }

  // Flushes puts (waiting, as Python's queue does at process exit), then tells the queue
  // how many of the items it handed this process were taken: those are finished, the queue
  // takes back the rest. Asynchronous: at exit, leave_all() waits for the queue's answer.
  void leave() {
    std::unique_lock lock{ch_->m};
    if (!agent_ || ch_->queue_gone)
      return;  // nothing handed out to this process since it last left (or ever), or gone
    wait_for_flush(lock);
    std::uint64_t done = std::exchange(ch_->done, 0) + std::exchange(ch_->taken_last, 0);
    ch_->inbox.clear();
    ++ch_->generation;        // what the old agent still receives is not ours any more
    ch_->fetching = false;    // a get still waiting fetches again, through a new agent
    ++ch_->leaves_pending;
    auto agent = std::move(agent_);
    lock.unlock();
    ch_->cv.notify_all();
    caf::anon_send(agent, q_leave_atom::value, done);
  }

  const caf::actor& actor() const { return queue_; }
  const std::shared_ptr<queue_channel>& channel() const { return ch_; }

private:
  // Waits while the queue keeps accepting; gives up after stalled_flush_limit without any
  // progress, logging what is dropped.
  void wait_for_flush(std::unique_lock<std::mutex>& lock) {
    auto flushed = [&] { return (ch_->outbox.empty() && !ch_->sending) || ch_->put_error; };
    auto seen = ch_->accepted;
    while (!ch_->cv.wait_for(lock, stalled_flush_limit, flushed)) {
      if (ch_->accepted != seen) {
        seen = ch_->accepted;
        continue;
      }
      auto dropped = ch_->outbox.size() + ch_->in_flight;
      ch_->put_error = make_error(errc::full, "the queue accepted nothing for 10 s");
      ch_->outbox.clear();
      lock.unlock();
      std::fprintf(stderr,
                   "mproc: a queue accepted nothing for 10 s while this process was leaving; "
                   "%zu item(s) it put were not delivered\n",
                   dropped);
      lock.lock();
      return;
    }
  }

  template <class Pred>
  bool wait(std::unique_lock<std::mutex>& lock, std::optional<millis> timeout, Pred pred) {
    if (!timeout) {
      ch_->cv.wait(lock, pred);
      return true;
    }
    return ch_->cv.wait_until(lock, clock_type::now() + *timeout, pred);
  }

  // Until an item (or the queue's end) is here. A fetch in flight may be a prefetch that
  // comes back empty, so each time none is in flight a waiting one is sent. On timeout the
  // queue is told to stop holding items for us (a batch already on its way still lands).
  bool wait_for_items(std::unique_lock<std::mutex>& lock, std::optional<millis> timeout) {
    auto ready = [&] { return !ch_->inbox.empty() || ch_->get_error; };
    auto deadline = clock_type::now() + timeout.value_or(millis{0});
    while (!ready()) {
      fetch_locked(true);
      auto progressed = [&] { return ready() || !ch_->fetching; };
      if (!timeout) {
        ch_->cv.wait(lock, progressed);
      } else if (!ch_->cv.wait_until(lock, deadline, progressed)) {
        caf::anon_send(agent_locked(), q_cancel_atom::value);
        return false;
      }
    }
    return true;
  }

  void finish_taken_locked() {
    ch_->done += std::exchange(ch_->taken_last, 0);
  }

  void fetch_locked(bool wait) {
    if (ch_->fetching || ch_->get_error)
      return;
    ch_->fetching = true;
    caf::anon_send(agent_locked(), q_fetch_atom::value, wait);
  }

  caf::actor agent() {
    std::lock_guard guard{ch_->m};
    return agent_locked();
  }

  caf::actor& agent_locked() {
    if (!agent_)
      agent_ = this_node().system().spawn(queue_agent, ch_, queue_, ch_->generation);
    return agent_;
  }

  static std::string render(const caf::error& e) { return this_node().system().render(e); }

  caf::actor queue_;
  std::shared_ptr<queue_channel> ch_;
  caf::actor agent_;  // spawned on first use; its behaviour shares ch_, never this object
};

// ---- leaving at process exit -----------------------------------------------------------

namespace {

// How long a process exiting waits, in all, for its queues to confirm that it left.
constexpr auto exit_leave_limit = std::chrono::seconds{10};

// The queue clients of this process. A process can end while handles are still alive (an
// actor's arguments, a handle in a static): its node's exit hook makes each of them leave,
// so that what the process took is acknowledged and what it prefetched goes back before the
// process is gone — otherwise the queue would deliver all of it again.
struct client_registry {
  struct entry {
    std::weak_ptr<queue_client> client;
    // Outlives the client while its agent waits for the queue's answer to a leave.
    std::weak_ptr<queue_channel> channel;
  };
  std::mutex m;
  std::vector<entry> entries;
  std::uint64_t hooked_node = 0;  // the node whose exit hook is installed
};

client_registry& registry() {
  static auto* r = new client_registry;  // never destroyed: used until _exit
  return *r;
}

bool has_left(queue_channel& ch, clock_type::time_point deadline) {
  std::unique_lock lock{ch.m};
  return ch.cv.wait_until(lock, deadline, [&] { return ch.leaves_pending == 0; });
}

// Makes every client still here leave, then waits until the queues have answered every
// leave, including those of clients destroyed meanwhile (a destroyed client has left or is
// leaving: its destructor leaves).
void leave_all() {
  std::vector<std::shared_ptr<queue_client>> clients;
  std::vector<std::shared_ptr<queue_channel>> channels;
  {
    auto& r = registry();
    std::lock_guard guard{r.m};
    for (auto& e : r.entries) {
      if (auto c = e.client.lock())
        clients.push_back(std::move(c));
      if (auto ch = e.channel.lock())
        channels.push_back(std::move(ch));
    }
    r.entries.clear();
  }
  for (auto& c : clients)
    c->leave();
  clients.clear();
  auto deadline = clock_type::now() + exit_leave_limit;
  for (auto& ch : channels)
    has_left(*ch, deadline);
}

void track(const std::shared_ptr<queue_client>& client) {
  auto& n = this_node();
  auto& r = registry();
  std::lock_guard guard{r.m};
  std::erase_if(r.entries, [](const auto& e) { return e.channel.expired(); });
  r.entries.push_back({client, client->channel()});
  if (r.hooked_node != n.id()) {
    r.hooked_node = n.id();
    n.at_exit(leave_all);
  }
}

} // namespace

// ---- queue_core ------------------------------------------------------------------------

queue_core::queue_core(node& owner, queue_options options)
  : queue_core(spawn_queue_server(owner.system(), {options.maxsize}), options.maxsize) {
  if (!options.name.empty())
    owner.register_name(options.name, queue_);
}

queue_core queue_core::lookup(node& owner, const std::string& name, millis timeout) {
  auto q = owner.lookup(name, timeout);
  auto reply = owner.request_message(q, caf::make_message(q_size_atom::value), timeout);
  if (!reply.match_elements<std::uint64_t, std::uint64_t, bool>()) {
    auto err = make_error(errc::bad_message, "'" + name + "' is not a queue");
    throw error(err, "lookup: '" + name + "' is not a queue");
  }
  return queue_core{std::move(q), static_cast<std::size_t>(reply.get_as<std::uint64_t>(1))};
}

queue_core::queue_core(caf::actor queue, std::size_t maxsize)
  : queue_(std::move(queue)), maxsize_(maxsize),
    client_(std::make_shared<queue_client>(queue_, maxsize)) {
  track(client_);
}

queue_client& queue_core::client() const {
  if (!client_)
    throw std::logic_error("operation on an invalid (default-constructed) mproc::queue");
  return *client_;
}

void queue_core::put(bytes item, std::optional<millis> timeout) {
  client().put(std::move(item), timeout);
}

void queue_core::put_nowait(bytes item) {
  client().put_nowait(std::move(item));
}

std::vector<bytes> queue_core::get_many(std::size_t max, std::optional<millis> timeout) {
  return client().get_many(max, timeout);
}

bytes queue_core::get_nowait() {
  return client().get_nowait();
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
  client().flush(std::nullopt);
  this_node().request(client().actor(), std::chrono::seconds{30}, q_close_atom::value);
  client().closed_here();
}

bool queue_core::flush(std::optional<millis> timeout) {
  return client().flush(timeout);
}

void queue_core::task_done(std::uint64_t n) {
  this_node().request(client().actor(), std::chrono::seconds{30}, q_done_atom::value, n);
}

bool queue_core::join(std::optional<millis> timeout) {
  client().flush(std::nullopt);  // items this process put are part of what join waits for
  try {
    this_node().request(client().actor(), timeout.value_or(millis{std::chrono::hours{24 * 365}}),
                        q_join_atom::value);
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

// ---- items and handles on the wire -----------------------------------------------------

void throw_bad_item(const std::string& why) {
  throw error(make_error(errc::bad_message, why), "a queue item cannot be decoded: " + why);
}

namespace {

// Larger buffers are freed after use rather than kept by the thread.
constexpr std::size_t kept_item_buffer = 1u << 20;

thread_local wire::buffer item_encode_buffer;

struct thread_zone {
  msgpack::zone zone;
  bool in_use = false;
};

thread_zone& this_thread_zone() {
  thread_local thread_zone z;
  return z;
}

} // namespace

wire::buffer& item_buffer() {
  item_encode_buffer.clear();
  return item_encode_buffer;
}

void trim_item_buffer() {
  if (item_encode_buffer.size() > kept_item_buffer)
    item_encode_buffer = wire::buffer{};
}

item_view::item_view(const bytes& b) {
  auto& mine = this_thread_zone();
  own_zone_ = mine.in_use;
  zone_ = own_zone_ ? new msgpack::zone : &mine.zone;
  mine.in_use = true;
  try {
    object_ = wire::unpack_bounded(*zone_, b.data(), b.size());
  } catch (const std::exception& e) {
    release();
    throw_bad_item(e.what());
  }
}

item_view::~item_view() {
  release();
}

void item_view::release() noexcept {
  if (own_zone_) {
    delete zone_;
  } else {
    zone_->clear();
    this_thread_zone().in_use = false;
  }
}

void encode_queue_ref(wire::packer& pk, const queue_core& q, wire::codec_state& st) {
  // The queue may be used by the receiver after every handle here is gone: it lives as long
  // as its node (a no-op where q is a reference to another process's queue).
  this_node().keep_alive(q.actor());
  pk.pack_array(2);
  wire::codec<caf::actor>::encode(pk, q.actor(), st);
  pk.pack(static_cast<std::uint64_t>(q.maxsize()));
}

bool decode_queue_ref(const msgpack::object& o, queue_core& out, wire::codec_state& st) {
  if (o.type != msgpack::type::ARRAY || o.via.array.size != 2)
    return wire::type_mismatch(st, "queue [actor, maxsize]", o);
  caf::actor q;
  std::uint64_t maxsize = 0;
  if (!wire::codec<caf::actor>::decode(o.via.array.ptr[0], q, st)
      || !wire::codec<std::uint64_t>::decode(o.via.array.ptr[1], maxsize, st))
    return false;
  if (!q)
    return st.fail("a queue reference names no actor");
  out = queue_core{std::move(q), static_cast<std::size_t>(maxsize)};
  return true;
}

} // namespace mproc::detail
