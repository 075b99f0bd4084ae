// A Manager's Queue (Python's manager.Queue()): items held by the manager, shared by every
// process holding the proxy, here or on other machines.
//
//   auto q = manager.queue<std::string>();          // or queue<T>(maxsize)
//   q.put("job");                                   // waits while full (maxsize > 0)
//   auto job = q.get(true, 5s);                     // throws mproc::error empty after 5 s
//   q.task_done(); q.join();                        // as Python's queue.Queue
//
// Each put and get is one request. A get hands its item over in the answer: a consumer
// killed while that answer travels loses the item (at most once, as Python's manager queue).
// mproc::queue<T> (actors/queue.hpp) delivers at least once, batches, and costs less between
// processes of one node tree.
#pragma once

#include <chrono>
#include <optional>

#include "mproc/actors/manager_ref.hpp"
#include "mproc/runtime/deadline.hpp"
#include "mproc/runtime/message_types.hpp"

namespace mproc {

class manager;

template <class T>
class queue_proxy {
public:
  using millis = std::chrono::milliseconds;
  queue_proxy() { (void)registered_; }

  // Throws mproc::error full when there is no room (at once when !block, else after timeout).
  void put(const T& x, bool block = true, wait_timeout timeout = {}) const {
    ref_.call_waiting(caf::atom("put"),
                      {detail::pack_value<T>(x), detail::pack_value(block), detail::pack_wait(timeout)},
                      block ? timeout.get() : std::optional<millis>{millis{0}});
  }
  void put_nowait(const T& x) const { put(x, false); }
  // Throws mproc::error empty when there is none (at once when !block, else after timeout).
  T get(bool block = true, wait_timeout timeout = {}) const {
    auto reply = ref_.call_waiting(caf::atom("get"),
                                   {detail::pack_value(block), detail::pack_wait(timeout)},
                                   block ? timeout.get() : std::optional<millis>{millis{0}});
    if (reply.size() != 1)
      detail::throw_manager_codec("a queue's answer", "no item");
    return detail::unpack_value<T>(reply[0]);
  }
  T get_nowait() const { return get(false); }
  std::size_t qsize() const {
    return detail::unpack_value<std::uint64_t>(ref_.call_one(caf::atom("qsize"), {}));
  }
  bool empty() const { return detail::unpack_value<bool>(ref_.call_one(caf::atom("empty"), {})); }
  bool full() const { return detail::unpack_value<bool>(ref_.call_one(caf::atom("full"), {})); }

  // JoinableQueue's pair, as Python's manager queue (a queue.Queue) has it: one task_done()
  // per item got and processed; join() waits until every item put was done (throws
  // mproc::error timeout after `timeout`). A task_done() too many throws bad_arguments.
  void task_done() const { ref_.call(caf::atom("task_done"), {}); }
  void join(wait_timeout timeout = {}) const {
    ref_.call_waiting(caf::atom("join"), {detail::pack_wait(timeout)}, timeout.get());
  }

  void set_timeout(millis t) { ref_.timeout(t); }
  const detail::manager_ref& ref() const { return ref_; }

private:
  friend class manager;
  friend struct detail::proxy_codec<queue_proxy>;
  explicit queue_proxy(detail::manager_ref ref) : ref_{std::move(ref)} { (void)registered_; }

  detail::manager_ref ref_;
  inline static const bool registered_ = detail::register_message_type<queue_proxy>();
};

} // namespace mproc

template <class T>
struct mproc::wire::codec<mproc::queue_proxy<T>> : mproc::detail::proxy_codec<mproc::queue_proxy<T>> {
  static std::string name() { return "queue_proxy<" + codec<T>::name() + ">"; }
};

template <class T>
struct caf::allowed_unsafe_message_type<mproc::queue_proxy<T>> : std::true_type {};
