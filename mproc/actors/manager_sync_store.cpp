// The manager's Event, Lock and Value (Python's SyncManager types): an event's waiters and a
// lock's queue of acquirers wait as deferred answers, so the manager never blocks on them.
#include <algorithm>
#include <deque>
#include <map>

#include "mproc/actors/manager_store.hpp"

namespace mproc::detail {

namespace {

using millis = std::chrono::milliseconds;

class event_store final : public manager_store {
public:
  std::string_view kind() const override { return "event"; }

  manager_reply call(caf::atom_value op, manager_args&) override {
    no_such_op("event", op);
  }

  std::optional<manager_reply> call_waiting(caf::atom_value op, manager_args& args,
                                            manager_context& ctx) override {
    switch (op_id(op)) {
      case op_id("set"):
        flag_ = true;
        for (auto& [token, w] : waiters_)
          w.promise.deliver(manager_reply{encoded(true)});
        waiters_.clear();
        return manager_reply{};
      case op_id("clear"): flag_ = false; return manager_reply{};
      case op_id("is_set"): return manager_reply{encoded(flag_)};
      case op_id("wait"): {
        expect_args(args, 1, "wait");
        auto timeout = wait_arg(args[0]);
        if (flag_ || (timeout && timeout->count() == 0))
          return manager_reply{encoded(flag_)};
        auto who = ctx.sender();  // may throw: before anything is promised
        auto token = ++last_token_;
        auto& w = waiters_[token];
        w.who = std::move(who);
        w.promise = ctx.defer();
        if (timeout)
          ctx.expire_after(*timeout, token);
        return std::nullopt;
      }
      default: return call(op, args);
    }
  }

  void expire(std::uint64_t token) override {
    if (auto i = waiters_.find(token); i != waiters_.end()) {
      i->second.promise.deliver(manager_reply{encoded(false)});
      waiters_.erase(i);
    }
  }

  void sender_down(const caf::actor_addr& who) override {
    std::erase_if(waiters_, [&](auto& entry) { return entry.second.who == who; });
  }

  void stop_waiters(const caf::error& why) override {
    for (auto& [token, w] : waiters_)
      w.promise.deliver(why);
    waiters_.clear();
  }
  std::size_t waiting() const override { return waiters_.size(); }
  bool waits(std::uint64_t token) const override { return waiters_.contains(token); }

private:
  struct waiter {
    caf::response_promise promise;
    caf::actor_addr who;
  };
  bool flag_ = false;
  std::map<std::uint64_t, waiter> waiters_;
  std::uint64_t last_token_ = 0;
};

// Python's Lock: anyone may release it. What the manager adds: when the process holding it
// ends, the lock passes on and the next holder is told (owner_died), as mproc::lock does.
class lock_store final : public manager_store {
public:
  std::string_view kind() const override { return "lock"; }

  manager_reply call(caf::atom_value op, manager_args&) override {
    no_such_op("lock", op);
  }

  // ("acquire", [blocking, timeout ms or nil]) -> [acquired, owner_died]; ("release", []).
  std::optional<manager_reply> call_waiting(caf::atom_value op, manager_args& args,
                                            manager_context& ctx) override {
    if (op == caf::atom("release")) {
      expect_args(args, 0, "release");
      if (!locked_)
        throw op_error(errc::bad_arguments, "release of an unlocked lock");
      hand_over();
      return manager_reply{};
    }
    if (op == caf::atom("locked"))
      return manager_reply{encoded(locked_)};
    if (op != caf::atom("acquire"))
      return call(op, args);
    expect_args(args, 2, "acquire");
    auto blocking = bool_arg(args[0]);
    auto timeout = wait_arg(args[1]);
    auto who = ctx.sender();  // the holder or waiter, watched; read before any promise
    if (!locked_)
      return grant(std::move(who));
    if (!blocking || (timeout && timeout->count() == 0))
      return manager_reply{encoded(false), encoded(false)};
    auto token = ++last_token_;
    waiting_.push_back({token, {}, std::move(who)});
    waiting_.back().promise = ctx.defer();
    if (timeout)
      ctx.expire_after(*timeout, token);
    return std::nullopt;
  }

  void expire(std::uint64_t token) override {
    auto i = std::find_if(waiting_.begin(), waiting_.end(), [&](auto& w) { return w.token == token; });
    if (i == waiting_.end())
      return;
    i->promise.deliver(manager_reply{encoded(false), encoded(false)});
    waiting_.erase(i);
  }

  void sender_down(const caf::actor_addr& who) override {
    std::erase_if(waiting_, [&](auto& w) { return w.who == who; });
    if (locked_ && holder_ == who) {
      owner_died_ = true;
      hand_over();
    }
  }

  void stop_waiters(const caf::error& why) override {
    for (auto& w : waiting_)
      w.promise.deliver(why);
    waiting_.clear();
  }
  std::size_t waiting() const override { return waiting_.size(); }
  bool waits(std::uint64_t token) const override {
    return std::ranges::any_of(waiting_, [&](auto& w) { return w.token == token; });
  }

private:
  struct waiter {
    std::uint64_t token;
    caf::response_promise promise;
    caf::actor_addr who;
  };

  manager_reply grant(caf::actor_addr who) {
    locked_ = true;
    holder_ = std::move(who);
    return {encoded(true), encoded(std::exchange(owner_died_, false))};
  }

  // The oldest waiter gets the lock, or it is free.
  void hand_over() {
    if (waiting_.empty()) {
      locked_ = false;
      holder_ = {};
      return;
    }
    auto next = std::move(waiting_.front());
    waiting_.pop_front();
    next.promise.deliver(grant(std::move(next.who)));
  }

  bool locked_ = false;
  bool owner_died_ = false;  // the last holder ended holding it; told to the next one
  caf::actor_addr holder_;
  std::deque<waiter> waiting_;
  std::uint64_t last_token_ = 0;
};

class value_store final : public manager_store {
public:
  explicit value_store(bytes initial) : value_{std::move(initial)} {}

  std::string_view kind() const override { return "value"; }

  manager_reply call(caf::atom_value op, manager_args& args) override {
    switch (op_id(op)) {
      case op_id("get"): expect_args(args, 0, "get"); return {value_};
      case op_id("set"):
        expect_args(args, 1, "set");
        value_ = std::move(args[0]);
        return {};
      default:
        no_such_op("value", op);
    }
  }

private:
  bytes value_;
};

} // namespace

std::unique_ptr<manager_store> make_event_store() { return std::make_unique<event_store>(); }
std::unique_ptr<manager_store> make_lock_store() { return std::make_unique<lock_store>(); }
std::unique_ptr<manager_store> make_value_store(bytes initial) {
  return std::make_unique<value_store>(std::move(initial));
}

} // namespace mproc::detail
