#include "mproc/actors/manager_server.hpp"

#include <map>
#include <set>
#include <unordered_map>

#include <caf/all.hpp>

#include "mproc/actors/manager_deadlines.hpp"
#include "mproc/actors/manager_store.hpp"
#include "mproc/runtime/actor_registry.hpp"
#include "mproc/runtime/log.hpp"

namespace mproc::detail {
namespace {
// The timer message for waiters' timeouts due at `due` (manager_deadlines), from the
// manager to itself. A type of this process, never on the wire: as an atom, any holder of
// the manager's handle could end others' waits early (an acquire(timeout) false, a queue get
// Empty).
struct waiters_due {
  std::chrono::steady_clock::time_point due;
};
} // namespace
} // namespace mproc::detail

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(mproc::detail::waiters_due)

namespace mproc::detail {

namespace {

struct manager_state {
  std::unordered_map<std::uint64_t, std::unique_ptr<manager_store>> objects;
  std::map<std::string, std::uint64_t, std::less<>> names;
  std::set<caf::actor_addr> watched;  // senders whose end the manager hears of
  std::uint64_t next_id = 1;
  bool stopping = false;
  manager_deadlines deadlines;

  bool still_waiting(const manager_deadlines::entry& e) const {
    auto i = objects.find(e.object);
    return i != objects.end() && i->second->waits(e.token);
  }

  // Nobody waits for an answer that cannot come: on stop, and however else the actor ends.
  void stop_all_waiters() {
    for (auto& [id, store] : objects)
      store->stop_waiters(make_error(errc::no_such_actor, "the manager stopped"));
  }
  ~manager_state() { stop_all_waiters(); }

  std::optional<manager_reply> run(std::uint64_t object, caf::atom_value op,
                                   manager_args& args, manager_context& ctx) {
    for (auto& arg : args)
      canonicalize(arg);
    if (object == manager_object)
      return own(op, args);
    auto i = objects.find(object);
    if (i == objects.end())
      throw op_error(errc::no_such_actor, "the manager holds no object " + std::to_string(object)
                                            + " (released, or from another manager)");
    if (op == caf::atom("waiting"))  // any object: how many calls wait on it
      return manager_reply{encoded(static_cast<std::uint64_t>(i->second->waiting()))};
    return i->second->call_waiting(op, args, ctx);
  }

  manager_reply own(caf::atom_value op, manager_args& args) {
    switch (op_id(op)) {
      case op_id("create"): return create(args);
      case op_id("release"): {
        expect_args(args, 1, "release");
        auto id = static_cast<std::uint64_t>(int_arg(args[0]));
        std::erase_if(names, [id](auto& entry) { return entry.second == id; });
        auto i = objects.find(id);
        if (i == objects.end())
          return {encoded(false)};
        i->second->stop_waiters(make_error(errc::no_such_actor, "the object was released"));
        objects.erase(i);
        return {encoded(true)};
      }
      case op_id("names"): {
        manager_reply out;
        for (auto& [name, id] : names) {
          out.push_back(encoded(value{name}));
          out.push_back(encoded(value{objects.at(id)->kind()}));
        }
        return out;
      }
      case op_id("stop"):
        stopping = true;
        stop_all_waiters();
        return {};
      default:
        no_such_op("manager", op);
    }
  }

  // ("create", [kind, name or nil[, parameter]]) -> [id]: a new object, or the one already
  // under `name` when it is of the same kind. The parameter: a queue's maxsize, a value's
  // initial value.
  manager_reply create(const manager_args& args) {
    expect_args(args, 2, 3, "create");
    auto kind = string_arg(args[0]);
    auto name = value_arg(args[1]);
    if (!name.is_nil() && name.type() != value::kind::string)
      throw op_error(errc::bad_arguments, "an object's name is a string or nil");
    if (!name.is_nil()) {
      if (auto i = names.find(name.as<std::string>()); i != names.end()) {
        auto& existing = *objects.at(i->second);
        if (existing.kind() != kind)
          throw op_error(errc::bad_arguments, "'" + i->first + "' is a "
                                                + std::string{existing.kind()} + ", not a " + kind);
        return {encoded(i->second)};
      }
    }
    auto store = make(kind, args.size() > 2 ? &args[2] : nullptr);
    auto id = next_id++;
    objects.emplace(id, std::move(store));
    if (!name.is_nil())
      names.emplace(name.as<std::string>(), id);
    return {encoded(id)};
  }

  static std::unique_ptr<manager_store> make(const std::string& kind, const bytes* parameter) {
    if (kind == "dict" || kind == "namespace")
      return make_dict_store(kind);
    if (kind == "list")
      return make_list_store();
    if (kind == "event")
      return make_event_store();
    if (kind == "lock")
      return make_lock_store();
    if (kind == "value") {
      if (parameter == nullptr)
        throw op_error(errc::bad_arguments, "a value is created with its initial value");
      return make_value_store(*parameter);
    }
    if (kind == "queue") {
      auto maxsize = parameter ? int_arg(*parameter) : 0;
      if (maxsize < 0)
        throw op_error(errc::bad_arguments, "a queue's maxsize is not negative");
      return make_queue_store(static_cast<std::uint64_t>(maxsize));
    }
    if (auto store = make_object_store(kind))
      return store;
    throw op_error(errc::unknown_actor_name,
                   "no managed type '" + kind
                     + "' (dict, list, namespace, event, lock, value, queue, or MPROC_MANAGED)");
  }
};

using manager_actor = caf::stateful_actor<manager_state>;

void send_timer(manager_actor* self, manager_deadlines::clock::time_point due) {
  // Rounded up: a timer that came a little early would find nothing due and go again.
  auto delay = std::chrono::ceil<std::chrono::microseconds>(due - manager_deadlines::clock::now());
  self->delayed_send(self, std::max(delay, std::chrono::microseconds{0}), waiters_due{due});
}

// The manager as one operation sees it.
class call_context final : public manager_context {
public:
  // The sender is read first: making a promise moves it out of the current message.
  call_context(manager_actor* self, std::uint64_t object)
    : self_{self}, object_{object}, sender_{self->current_sender()} {}

  caf::response_promise defer() override {
    promise_ = self_->make_response_promise();
    return *promise_;
  }
  void expire_after(std::chrono::milliseconds delay, std::uint64_t token) override {
    auto& st = self_->state;
    auto due = manager_deadlines::clock::now() + delay;
    auto waiting = [&st](const manager_deadlines::entry& e) { return st.still_waiting(e); };
    if (auto at = st.deadlines.add({due, object_, token}, waiting))
      send_timer(self_, *at);
  }
  caf::actor_addr sender() override {
    if (!sender_)
      throw op_error(errc::bad_arguments, "a waiting operation needs a sender to answer");
    auto addr = caf::actor_cast<caf::actor_addr>(sender_);
    if (self_->state.watched.insert(addr).second)
      self_->monitor(sender_);
    return addr;
  }
  const std::optional<caf::response_promise>& promise() const { return promise_; }

private:
  manager_actor* self_;
  std::uint64_t object_;
  caf::strong_actor_ptr sender_;
  std::optional<caf::response_promise> promise_;
};

caf::behavior mproc_manager(manager_actor* self) {
  // A sender ended: its waiters go, what it held (a lock) is given back.
  self->set_down_handler([self](caf::down_msg& down) {
    self->state.watched.erase(down.source);
    for (auto& [id, store] : self->state.objects)
      store->sender_down(down.source);
  });
  return {
    [self](m_call_atom, std::uint64_t object, caf::atom_value op,
           manager_args& args) -> caf::result<manager_reply> {
      try {
        call_context ctx{self, object};
        auto reply = self->state.run(object, op, args, ctx);
        if (self->state.stopping)
          self->quit();
        if (!reply) {
          if (!ctx.promise())  // a store that deferred nothing: a bug, answered as one
            return make_error(errc::bad_arguments, "the operation left no answer");
          return *ctx.promise();
        }
        return std::move(*reply);
      } catch (const op_error& e) {
        return make_error(e.code, e.what());
      } catch (const error& e) {
        return e.reason();
      } catch (const std::exception& e) {  // bad_alloc, mostly: the manager goes on
        log::warn("manager: ", e.what());
        return make_error(errc::bad_arguments, e.what());
      } catch (...) {  // a registered method threw something else: the manager goes on
        return make_error(errc::task_failed, "an operation threw a non-std::exception");
      }
    },
    [self](waiters_due& timer) {
      auto& st = self->state;
      for (const auto& e : st.deadlines.due_by(timer.due, manager_deadlines::clock::now()))
        if (auto i = st.objects.find(e.object); i != st.objects.end())
          i->second->expire(e.token);
      if (auto at = st.deadlines.next_timer())
        send_timer(self, *at);
    },
  };
}

const bool registered = register_actor(make_actor_entry<&mproc_manager>("mproc_manager"));

} // namespace

caf::actor spawn_local_manager(caf::actor_system& sys) {
  // Its own thread: in a node whose few scheduler threads all wait in blocking calls to it,
  // a scheduled manager would never run.
  return sys.spawn<caf::detached>(mproc_manager);
}

const char* manager_actor_name() {
  (void)registered;
  return "mproc_manager";
}

} // namespace mproc::detail
