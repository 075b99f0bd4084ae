// Queue and JoinableQueue: Python's multiprocessing.Queue as an actor.
//
//   mproc::queue<job> q{node, {.maxsize = 100}};          // the queue actor lives in `node`
//   node.spawn_process("worker", {}, q);                   // a handle crosses to a child
//   q.put(job{...});                                       // waits while full
//   job j = q.get();                                       // waits while empty
//
// Handles are cheap to copy; all handles of a queue in one process share a local agent that sends puts in
// batches (one batch in flight per process) and prefetches gets, so an item costs no round
// trip of its own. Items are encoded once with the type's codec and decoded once by the
// consumer: T needs MSGPACK_DEFINE or a built-in codec, and may not hold actor references.
//
// Delivery (docs/queue.md): at least once. An item handed to a consumer counts as done
// when the same thread next calls get()/get_many() or task_done() (or the process leaves);
// if its process dies first, the item goes to another consumer. So an item is delivered twice
// only when the consumer holding it died, and once accepted never lost (docs/queue.md says
// what is not promised: puts still in a killed producer's outbox, an item above max_frame).
//
// For actors, q.actor() answers the messages listed in docs/queue.md.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <caf/actor.hpp>
#include <caf/allowed_unsafe_message_type.hpp>
#include <caf/message_builder.hpp>

#include "mproc/runtime/deadline.hpp"
#include "mproc/runtime/errors.hpp"
#include "mproc/runtime/message_types.hpp"
#include "mproc/actors/queue_batch.hpp"
#include "mproc/serialization/bytes.hpp"
#include "mproc/serialization/codec.hpp"

namespace mproc {

class node;

struct queue_options {
  // 0: unbounded (Python's default). Otherwise put() waits while the queue holds maxsize
  // items, and each process keeps at most maxsize more waiting to be sent.
  std::size_t maxsize = 0;
  // If set, the queue can be found by this name from this process and its descendants
  // (queue<T>::lookup), as long as it lives.
  std::string name;
};

// What a queue has done so far (queue<T>::stats()).
struct queue_stats {
  std::size_t size = 0;             // items in the queue now (qsize())
  std::uint64_t accepted = 0;       // items it ever accepted from put
  // Items handed out again because the consumer holding them ended without acknowledging
  // them: the only source of duplicates (docs/queue.md).
  std::uint64_t redelivered = 0;
  std::uint64_t unacknowledged = 0; // handed to consumers, not yet acknowledged
};

namespace detail {

class queue_client;
template <class Handle>
struct queue_handle_codec;

// The untyped queue handle: items are opaque bytes.
class queue_core {
public:
  using millis = std::chrono::milliseconds;

  queue_core() = default;
  queue_core(node& owner, queue_options options);
  // A handle to an existing queue actor (decoded from the wire, or a pipe's queue).
  queue_core(caf::actor queue, std::size_t maxsize);
  // The queue registered as `name` here or in an ancestor process.
  static queue_core lookup(node& owner, const std::string& name, millis timeout);

  // An item's encoding, copied into this process's next batch.
  void put(std::string_view item, std::optional<millis> timeout);
  void put_nowait(std::string_view item);
  // Between 1 and `max` items, shared with the batch they came in.
  item_run get_many(std::size_t max, std::optional<millis> timeout);
  item_run get_nowait();
  // The tail of the last get's items, not taken after all: back to the front, uncounted;
  // false when another get or a leave came in between (see queue_client).
  bool untake(const item_run& rest);
  // True when get() would not wait: an item is here, or the queue ended (get then throws).
  bool poll(std::optional<millis> timeout);
  std::size_t qsize() const;
  queue_stats stats() const;
  bool closed() const;
  void close();
  // Sends what put() buffered; true when the queue has taken all of it.
  bool flush(std::optional<millis> timeout);
  void task_done(std::uint64_t n);
  bool join(std::optional<millis> timeout);
  // This process is done with the queue: flushes puts, returns prefetched items.
  void leave();

  const caf::actor& actor() const { return queue_; }
  std::size_t maxsize() const { return maxsize_; }

private:
  queue_client& client() const;  // throws for an invalid handle
  caf::message ask(const caf::message& question) const;  // a request to the queue actor

  caf::actor queue_;
  std::size_t maxsize_ = 0;
  // This process's side of the queue, shared by all its handles here. Its end (the last
  // handle gone) flushes puts and returns what was prefetched but not taken.
  std::shared_ptr<queue_client> client_;
};

// This thread's encode buffer for items, emptied: a put allocates nothing of its own.
wire::buffer& item_buffer();
// Frees the buffer after an unusually large item.
void trim_item_buffer();

// An item's encoding, in this thread's buffer: valid while this object lives, and only one
// lives per thread at a time (a second encode_item reuses the buffer).
class encoded_item {
public:
  explicit encoded_item(std::string_view bytes) : bytes_{bytes} {}
  ~encoded_item() { trim_item_buffer(); }
  encoded_item(const encoded_item&) = delete;
  encoded_item& operator=(const encoded_item&) = delete;
  std::string_view bytes() const { return bytes_; }

private:
  std::string_view bytes_;
};

// Encodes and decodes queue items with T's codec.
template <class T>
encoded_item encode_item(const T& x) {
  auto& buf = item_buffer();
  wire::packer pk{buf};
  wire::codec_state st;
  wire::codec<T>::encode(pk, x, st);
  if (!st.ok())
    throw error(make_error(errc::bad_message, st.error), "cannot encode a queue item: " + st.error);
  return encoded_item{{buf.data(), buf.size()}};
}

[[noreturn]] void throw_bad_item(const std::string& why);

// One item's msgpack value, unpacked into a zone this thread reuses (its strings and
// binaries stay in `b`): decoding an item allocates nothing for msgpack itself. Throws
// mproc::error bad_message.
class item_view {
public:
  explicit item_view(std::string_view b);
  ~item_view();
  item_view(const item_view&) = delete;
  item_view& operator=(const item_view&) = delete;
  const msgpack::object& get() const { return object_; }

private:
  void release() noexcept;

  msgpack::zone* zone_;
  bool own_zone_;  // a view made while another is alive in this thread has its own
  msgpack::object object_;
};

template <class T>
T decode_item(std::string_view b) {
  item_view view{b};
  T out{};
  wire::codec_state st;
  if (!wire::codec<T>::decode(view.get(), out, st))
    throw_bad_item(st.error);
  return out;
}

} // namespace detail

template <class T>
class queue {
public:
  queue(node& owner, queue_options options = {}) : core_(owner, options) { (void)registered_; }
  // An invalid handle (for containers and decoding); every operation on it throws.
  queue() = default;

  // The queue created with options.name = `name`, here or in an ancestor process. Throws
  // mproc::error: no_such_actor, timeout. The item type is not checked: a queue of another
  // type shows up as bad_message on get().
  static queue lookup(node& owner, const std::string& name,
                      std::chrono::milliseconds timeout = std::chrono::seconds{10}) {
    return queue{detail::queue_core::lookup(owner, name, timeout)};
  }

  // Waits while a bounded queue is full; throws mproc::error: full after `timeout`, closed.
  void put(const T& item) { core_.put(detail::encode_item(item).bytes(), std::nullopt); }
  template <class Rep, class Period>
  void put(const T& item, std::chrono::duration<Rep, Period> timeout) {
    core_.put(detail::encode_item(item).bytes(), to_millis(timeout));
  }
  // Throws mproc::error: full when the queue has no room right now, or, behind this
  // process's puts not yet accepted, when it may not run further ahead of a bounded queue
  // (docs/queue.md, "Known limits").
  void put_nowait(const T& item) { core_.put_nowait(detail::encode_item(item).bytes()); }
  void put_many(const std::vector<T>& items) {
    for (const auto& x : items)
      put(x);
  }

  // Waits while empty; throws mproc::error: empty after `timeout`, closed once closed and
  // drained.
  T get() { return detail::decode_item<T>(core_.get_many(1, std::nullopt)[0]); }
  template <class Rep, class Period>
  T get(std::chrono::duration<Rep, Period> timeout) {
    return detail::decode_item<T>(core_.get_many(1, to_millis(timeout))[0]);
  }
  // Throws mproc::error: empty when nothing is there right now.
  T get_nowait() { return detail::decode_item<T>(core_.get_nowait()[0]); }
  // Between 1 and `max` items, waiting only for the first: the fast path for consumers.
  // An item that cannot be decoded ends the batch before it; the next call throws for it
  // (bad_message), and the items after it stay for the calls after that.
  std::vector<T> get_many(std::size_t max) { return decode_all(core_.get_many(max, std::nullopt)); }
  template <class Rep, class Period>
  std::vector<T> get_many(std::size_t max, std::chrono::duration<Rep, Period> timeout) {
    return decode_all(core_.get_many(max, to_millis(timeout)));
  }

  // Items in the queue actor (not counting items prefetched by consumers), as Python's
  // qsize() an estimate by the time it returns.
  std::size_t qsize() const { return core_.qsize(); }
  bool empty() const { return qsize() == 0; }
  bool full() const { return maxsize() != 0 && qsize() >= maxsize(); }
  std::size_t maxsize() const { return core_.maxsize(); }
  queue_stats stats() const { return core_.stats(); }
  // Later puts fail with closed; gets drain what is left, then fail with closed once no
  // consumer in another process holds items that would come back if it died (they wait).
  void close() { core_.close(); }
  // Sends what this process's puts buffered; true when the queue took it all (but for an
  // item above the receiving node's max_frame, dropped with a warning).
  template <class Rep, class Period>
  bool flush(std::chrono::duration<Rep, Period> timeout) {
    return core_.flush(to_millis(timeout));
  }

  const caf::actor& actor() const { return core_.actor(); }

protected:
  explicit queue(detail::queue_core core) : core_(std::move(core)) { (void)registered_; }

  template <class Rep, class Period>
  static std::chrono::milliseconds to_millis(std::chrono::duration<Rep, Period> d) {
    return capped(d);  // milliseconds::max() waits for ever, without overflow
  }
  std::vector<T> decode_all(const detail::item_run& items) {
    std::vector<T> out;
    out.reserve(items.size());
    for (std::size_t i = 0; i < items.size(); ++i) {
      try {
        out.push_back(detail::decode_item<T>(items[i]));
      } catch (...) {
        // The bad item is taken, with the error, when it is the first; the ones after it
        // stay for the next calls. Another thread's get in between keeps them all taken:
        // the others are returned, the bad one skipped.
        auto tail = items;
        tail.next += i == 0 ? 1 : i;
        if (!core_.untake(tail)) {
          for (auto k = i + 1; k < items.size(); ++k)
            try {
              out.push_back(detail::decode_item<T>(items[k]));
            } catch (...) {
            }
          if (out.empty())
            throw;
          return out;
        }
        if (i == 0)
          throw;
        break;
      }
    }
    return out;
  }

  detail::queue_core core_;

private:
  friend struct detail::queue_handle_codec<queue<T>>;
  // Makes queue<T> a message type (so it can be a spawn argument) in every process that
  // contains this instantiation, before main() runs.
  static inline const bool registered_ = detail::register_message_type<queue<T>>();
};

// JoinableQueue: put() counts an unfinished task, task_done() finishes one, join() waits
// for none to be left.
template <class T>
class joinable_queue : public queue<T> {
public:
  joinable_queue(node& owner, queue_options options = {}) : queue<T>(owner, options) {
    (void)registered_;
  }

  // Throws mproc::error: bad_arguments when called more often than items were put.
  void task_done() { this->core_.task_done(1); }
  void join() { this->core_.join(std::nullopt); }
  template <class Rep, class Period>
  bool join(std::chrono::duration<Rep, Period> timeout) {
    return this->core_.join(queue<T>::to_millis(timeout));
  }

  joinable_queue() = default;

private:
  friend struct detail::queue_handle_codec<joinable_queue<T>>;
  explicit joinable_queue(detail::queue_core core) : queue<T>(std::move(core)) {
    (void)registered_;
  }
  static inline const bool registered_ = detail::register_message_type<joinable_queue<T>>();
};

namespace detail {
void encode_queue_ref(wire::packer& pk, const queue_core& q, wire::codec_state& st);
bool decode_queue_ref(const msgpack::object& o, queue_core& out, wire::codec_state& st);
} // namespace detail

} // namespace mproc

// A queue handle on the wire: [queue actor, maxsize]; a joinable one under its own tag.
template <class Handle>
struct mproc::detail::queue_handle_codec {
  static void encode(wire::packer& pk, const Handle& q, wire::codec_state& st) {
    encode_queue_ref(pk, q.core_, st);
  }
  static bool decode(const msgpack::object& o, Handle& out, wire::codec_state& st) {
    queue_core core;
    if (!decode_queue_ref(o, core, st))
      return false;
    out = Handle{std::move(core)};
    return true;
  }
};

template <class T>
struct mproc::wire::codec<mproc::queue<T>> : mproc::detail::queue_handle_codec<mproc::queue<T>> {
  static std::string name() { return "queue<" + codec<T>::name() + ">"; }
};

template <class T>
struct mproc::wire::codec<mproc::joinable_queue<T>>
  : mproc::detail::queue_handle_codec<mproc::joinable_queue<T>> {
  static std::string name() { return "jqueue<" + codec<T>::name() + ">"; }
};

template <class T>
struct caf::allowed_unsafe_message_type<mproc::queue<T>> : std::true_type {};
template <class T>
struct caf::allowed_unsafe_message_type<mproc::joinable_queue<T>> : std::true_type {};
