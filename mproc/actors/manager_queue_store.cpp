// The manager's Queue (Python's manager.Queue(), a queue.Queue): items held in the manager, a
// get that waits for one and a put that waits for room answered later, in arrival order;
// task_done and a join that waits until every item put was done.
#include <algorithm>
#include <deque>

#include "mproc/actors/manager_store.hpp"

namespace mproc::detail {

namespace {

using millis = std::chrono::milliseconds;

class queue_store final : public manager_store {
public:
  explicit queue_store(std::uint64_t maxsize) : maxsize_{maxsize} {}

  std::string_view kind() const override { return "queue"; }

  manager_reply call(caf::atom_value op, manager_args&) override {
    switch (op_id(op)) {
      case op_id("qsize"): return {encoded(static_cast<std::uint64_t>(items_.size()))};
      case op_id("empty"): return {encoded(items_.empty())};
      case op_id("full"): return {encoded(full())};
      case op_id("task_done"): return task_done();
      default:
        no_such_op("queue", op);
    }
  }

  // ("put", [item, blocking, timeout ms or nil]) -> []: full when it cannot wait;
  // ("get", [blocking, timeout ms or nil]) -> [item]: empty when it cannot wait;
  // ("join", [timeout ms or nil]) -> [] once every item put was done: timeout when it was not.
  std::optional<manager_reply> call_waiting(caf::atom_value op, manager_args& args,
                                            manager_context& ctx) override {
    if (op == caf::atom("put")) {
      expect_args(args, 3, "put");
      return put(args, ctx);
    }
    if (op == caf::atom("get")) {
      expect_args(args, 2, "get");
      return get(args, ctx);
    }
    if (op == caf::atom("join")) {
      expect_args(args, 1, "join");
      if (unfinished_ == 0)
        return manager_reply{};
      return wait(joiners_, ctx, wait_arg(args[0]), {});
    }
    return call(op, args);
  }

  void expire(std::uint64_t token) override {
    auto match = [&](auto& w) { return w.token == token; };
    if (auto i = std::find_if(getters_.begin(), getters_.end(), match); i != getters_.end()) {
      i->promise.deliver(make_error(errc::empty, "queue.Empty: nothing within the timeout"));
      getters_.erase(i);
    }
    if (auto i = std::find_if(putters_.begin(), putters_.end(), match); i != putters_.end()) {
      i->promise.deliver(make_error(errc::full, "queue.Full: no room within the timeout"));
      putters_.erase(i);
    }
    if (auto i = std::find_if(joiners_.begin(), joiners_.end(), match); i != joiners_.end()) {
      i->promise.deliver(make_error(errc::timeout, "tasks are still unfinished"));
      joiners_.erase(i);
    }
  }

  // A dead getter is handed nothing more; a dead putter's item was never accepted.
  void sender_down(const caf::actor_addr& who) override {
    std::erase_if(getters_, [&](auto& w) { return w.who == who; });
    std::erase_if(putters_, [&](auto& w) { return w.who == who; });
    std::erase_if(joiners_, [&](auto& w) { return w.who == who; });
    admit_putters();
  }

  void stop_waiters(const caf::error& why) override {
    for (auto* line : {&getters_, &putters_, &joiners_}) {
      for (auto& w : *line)
        w.promise.deliver(why);
      line->clear();
    }
  }
  std::size_t waiting() const override {
    return getters_.size() + putters_.size() + joiners_.size();
  }
  bool waits(std::uint64_t token) const override {
    auto match = [&](auto& w) { return w.token == token; };
    return std::ranges::any_of(getters_, match) || std::ranges::any_of(putters_, match)
           || std::ranges::any_of(joiners_, match);
  }

private:
  struct waiter {
    std::uint64_t token;
    caf::response_promise promise;
    caf::actor_addr who;
    bytes item;  // a putter's
  };

  bool full() const { return maxsize_ > 0 && items_.size() >= maxsize_; }

  // [blocking, timeout]: no wait at all unless blocking.
  static std::optional<millis> wait_of(const manager_args& args, std::size_t blocking_at) {
    if (!bool_arg(args[blocking_at]))
      return millis{0};
    return wait_arg(args[blocking_at + 1]);
  }

  std::optional<manager_reply> put(manager_args& args, manager_context& ctx) {
    auto timeout = wait_of(args, 1);
    if (!getters_.empty()) {  // someone waits: the item goes straight to them
      ++unfinished_;
      auto g = std::move(getters_.front());
      getters_.pop_front();
      g.promise.deliver(manager_reply{std::move(args[0])});
      return manager_reply{};
    }
    if (!full()) {
      ++unfinished_;
      items_.push_back(std::move(args[0]));
      return manager_reply{};
    }
    if (timeout && timeout->count() == 0)
      throw op_error(errc::full, "queue.Full");
    return wait(putters_, ctx, timeout, std::move(args[0]));
  }

  std::optional<manager_reply> get(manager_args& args, manager_context& ctx) {
    auto timeout = wait_of(args, 0);
    if (!items_.empty()) {
      auto item = std::move(items_.front());
      items_.pop_front();
      admit_putters();
      return manager_reply{std::move(item)};
    }
    if (timeout && timeout->count() == 0)
      throw op_error(errc::empty, "queue.Empty");
    return wait(getters_, ctx, timeout, {});
  }

  std::optional<manager_reply> wait(std::deque<waiter>& line, manager_context& ctx,
                                    std::optional<millis> timeout, bytes item) {
    auto who = ctx.sender();  // may throw: before anything is promised
    auto token = ++last_token_;
    line.push_back({token, {}, std::move(who), std::move(item)});
    line.back().promise = ctx.defer();
    if (timeout)
      ctx.expire_after(*timeout, token);
    return std::nullopt;
  }

  // Python's ValueError for one call too many; the last one lets every join() go.
  manager_reply task_done() {
    if (unfinished_ == 0)
      throw op_error(errc::bad_arguments, "task_done() called too many times");
    if (--unfinished_ == 0) {
      for (auto& j : joiners_)
        j.promise.deliver(manager_reply{});
      joiners_.clear();
    }
    return {};
  }

  // Waiting putters' items go in while there is room, oldest first.
  void admit_putters() {
    while (!putters_.empty() && !full()) {
      auto p = std::move(putters_.front());
      putters_.pop_front();
      ++unfinished_;
      items_.push_back(std::move(p.item));
      p.promise.deliver(manager_reply{});
    }
  }

  std::uint64_t maxsize_;
  std::deque<bytes> items_;
  std::deque<waiter> getters_;  // only while items_ is empty
  std::deque<waiter> putters_;  // only while full
  std::deque<waiter> joiners_;  // only while tasks are unfinished
  std::uint64_t unfinished_ = 0;  // items put and not yet task_done()
  std::uint64_t last_token_ = 0;
};

} // namespace

std::unique_ptr<manager_store> make_queue_store(std::uint64_t maxsize) {
  return std::make_unique<queue_store>(maxsize);
}

} // namespace mproc::detail
