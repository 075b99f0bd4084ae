// The supervisor actor behind mproc::supervise (runtime/supervisor.hpp).
//
// Everything it does to children is a *plan* of steps — start child X, stop child Y — run
// one at a time, each finished by an event: the start settled, the child's exit arrived.
// Exits of children that happen while a plan runs wait until it is done, then are handled in
// order, as OTP's supervisor handles one EXIT at a time. Nothing here blocks: processes
// start asynchronously and their ends arrive as messages.
#include <unistd.h>

#include <cstdio>
#include <deque>
#include <map>
#include <optional>

#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/send.hpp>

#include "mproc/runtime/actor_registry.hpp"
#include "mproc/runtime/errors.hpp"
#include "mproc/runtime/inspect.hpp"
#include "mproc/runtime/internal/child_ref.hpp"
#include "mproc/runtime/log.hpp"
#include "mproc/runtime/internal/restart_window.hpp"
#include "mproc/runtime/internal/supervisor_protocol.hpp"
#include "mproc/runtime/message_types.hpp"
#include "mproc/runtime/node.hpp"
#include "mproc/runtime/supervisor.hpp"

namespace mproc {

namespace {

[[maybe_unused]] const bool child_status_registered =
  detail::register_message_type<child_status>();

using clock_type = std::chrono::steady_clock;
using namespace detail;

// OTP's default for workers; for supervisors, long enough to stop their own children.
constexpr std::chrono::milliseconds worker_shutdown{5000};
constexpr std::chrono::milliseconds supervisor_shutdown{30000};

enum class child_state { starting, running, restarting, stopping, stopped };

const char* to_string(child_state s) {
  switch (s) {
    case child_state::starting: return "starting";
    case child_state::running: return "running";
    case child_state::restarting: return "restarting";
    case child_state::stopping: return "stopping";
    case child_state::stopped: return "stopped";
  }
  return "?";
}

struct child {
  child_spec spec;
  caf::actor ref;  // stable: follows the incarnations
  std::uint64_t incarnation = 0;
  child_state state = child_state::stopped;
  caf::actor current;
  std::optional<process> proc;  // process children
  clock_type::time_point started_at;
  std::int32_t restarts = 0;
  bool needed_kill = false;
};

// How a child's incarnation ended.
struct ending {
  std::string id;
  std::uint64_t incarnation;
  bool abnormal;
  std::string how;
};

struct step {
  enum kind_t { start, stop } kind;
  std::string id;
  std::optional<caf::response_promise> done;  // answered when the step finished
  bool answer_with_id = false;                // with the child's id instead of ()
};

struct sup_state {
  supervisor_flags flags;
  std::vector<child> children;         // in start order
  std::optional<child_spec> templ;     // simple_one_for_one
  std::uint64_t next_dynamic = 1;
  restart_window window{1, std::chrono::milliseconds{5000}};
  std::deque<step> plan;
  std::optional<step> current_step;    // running
  std::deque<ending> deferred;         // exits that arrived while a plan ran
  bool initializing = true;
  std::vector<caf::response_promise> ready_waiters;
  caf::error init_error;
  bool shutting_down = false;
  caf::error quit_reason;
  std::vector<std::string> needed_kill;  // during the shutdown, in stop order
  std::vector<caf::response_promise> stop_waiters;
  inspect_source source;  // what `mproc ps` shows of this supervisor, while it lives
};

using sup_actor = caf::event_based_actor;
using state_ptr = std::shared_ptr<sup_state>;

std::string who(const sup_state& st) {
  char node_id[17];
  std::snprintf(node_id, sizeof node_id, "%016llx",
                static_cast<unsigned long long>(this_node().id()));
  return "supervisor '" + st.flags.name + "' (node " + node_id + ", pid "
         + std::to_string(::getpid()) + ")";
}

child* find(sup_state& st, const std::string& id) {
  for (auto& c : st.children)
    if (c.spec.id == id)
      return &c;
  return nullptr;
}

std::size_t index_of(const sup_state& st, const std::string& id) {
  for (std::size_t i = 0; i < st.children.size(); ++i)
    if (st.children[i].spec.id == id)
      return i;
  return st.children.size();
}

bool is_live(child_state s) {
  return s == child_state::starting || s == child_state::running || s == child_state::stopping;
}

std::chrono::milliseconds shutdown_timeout(const child_spec& spec) {
  if (spec.shutdown.count() > 0)
    return spec.shutdown;
  return spec.type == child_type::supervisor ? supervisor_shutdown : worker_shutdown;
}

void run_next(sup_actor* self, const state_ptr& st);
void handle_ending(sup_actor* self, const state_ptr& st, ending e);

// ---- steps -----------------------------------------------------------------------------

void finish_step(sup_actor* self, const state_ptr& st, caf::error err = {}) {
  if (st->current_step && st->current_step->done) {
    auto& s = *st->current_step;
    if (err)
      s.done->deliver(err);
    else if (s.answer_with_id)
      s.done->deliver(s.id);
    else
      s.done->deliver(caf::unit);
  }
  st->current_step.reset();
  run_next(self, st);
}

void point_ref(child& c, caf::actor current) {
  caf::anon_send(c.ref, sup_current_atom::value, std::move(current));
}

void started(sup_actor* self, const state_ptr& st, child& c, caf::actor actor) {
  c.current = std::move(actor);
  c.state = child_state::running;
  c.started_at = clock_type::now();
  point_ref(c, c.current);
  log::info(who(*st), ": started child '", c.spec.id, "' (",
            c.proc ? "pid " + std::to_string(c.proc->pid()) : std::string{"in-process"}, ")");
  finish_step(self, st);
}

void start_failed(sup_actor* self, const state_ptr& st, child& c, const caf::error& err) {
  c.state = child_state::stopped;
  c.proc.reset();
  auto text = self->system().render(err);
  log::warn(who(*st), ": child '", c.spec.id, "' failed to start: ", text);
  if (st->initializing && !st->init_error)
    st->init_error = err;
  else if (!st->shutting_down)  // counts as a failure: restart policy and intensity decide
    st->deferred.push_back({c.spec.id, c.incarnation, true, "failed to start: " + text});
  finish_step(self, st, err);
}

void start_process_child(sup_actor* self, const state_ptr& st, child& c) {
  c.proc.emplace(this_node(), c.spec.actor,
                 process_options{.name = st->flags.name + "/" + c.spec.id, .daemon = true},
                 c.spec.args);
  caf::actor me = caf::actor_cast<caf::actor>(self);
  auto id = c.spec.id;
  auto inc = c.incarnation;
  c.proc->on_exit([me, id, inc](int code) {
    caf::anon_send(me, sup_exited_atom::value, id, inc, code);
  });
  c.proc->start([me, id, inc](caf::error err) {
    caf::anon_send(me, sup_started_atom::value, id, inc, std::move(err));
  });
}

void start_in_process_child(sup_actor* self, const state_ptr& st, child& c) {
  auto actor = spawn_registered(self->system(), c.spec.actor, c.spec.args);
  if (!actor) {
    start_failed(self, st, c, actor.error());
    return;
  }
  self->monitor(*actor);
  started(self, st, c, std::move(*actor));
}

void do_start(sup_actor* self, const state_ptr& st, child& c) {
  ++c.incarnation;
  c.state = child_state::starting;
  c.needed_kill = false;
  if (c.spec.in_process)
    start_in_process_child(self, st, c);
  else
    start_process_child(self, st, c);
}

void kill_now(child& c) {
  c.needed_kill = true;
  if (c.proc)
    c.proc->kill();
  else if (c.current)
    caf::anon_send_exit(c.current, caf::exit_reason::kill);
}

void do_stop(sup_actor* self, child& c) {
  if (!is_live(c.state)) {  // already down: nothing to wait for
    c.state = child_state::stopped;
    return;
  }
  c.state = child_state::stopping;
  point_ref(c, {});
  if (c.spec.brutal_kill) {
    kill_now(c);
    return;
  }
  // Supervisors get an exit message, so that they stop their own children in order;
  // process workers get SIGTERM, as Python's terminate().
  if (c.spec.type == child_type::supervisor || !c.proc) {
    if (c.current)
      caf::anon_send_exit(c.current, caf::exit_reason::user_shutdown);
  } else {
    c.proc->terminate();
  }
  self->delayed_send(self, shutdown_timeout(c.spec), sup_kill_atom::value, c.spec.id,
                     c.incarnation);
}

void run_next(sup_actor* self, const state_ptr& st) {
  while (!st->current_step && !st->plan.empty()) {
    st->current_step = std::move(st->plan.front());
    st->plan.pop_front();
    auto* c = find(*st, st->current_step->id);
    if (c == nullptr) {
      finish_step(self, st, make_error(errc::no_such_actor, "no child '" + st->current_step->id + "'"));
      return;
    }
    if (st->current_step->kind == step::start) {
      do_start(self, st, *c);
      return;  // finished by started / start_failed
    }
    do_stop(self, *c);
    if (c->state == child_state::stopping)
      return;  // finished by the child's end
    // It had ended on its own while another step ran: that end was put off, and is settled
    // by this stop now (terminate_child must not see it restarted afterwards).
    std::erase_if(st->deferred, [&](const ending& e) {
      return e.id == c->spec.id && e.incarnation == c->incarnation;
    });
    st->current_step.reset();
  }
  if (st->current_step)
    return;
  // The plan is done.
  if (st->initializing) {
    st->initializing = false;
    if (st->init_error) {  // OTP: a child that cannot start fails the supervisor's start
      for (auto it = st->children.rbegin(); it != st->children.rend(); ++it)
        st->plan.push_back({step::stop, it->spec.id, std::nullopt});
      st->shutting_down = true;
      st->quit_reason = st->init_error;
      run_next(self, st);
      return;
    }
    for (auto& rp : st->ready_waiters)
      rp.deliver(caf::unit);
    st->ready_waiters.clear();
  }
  if (st->shutting_down) {
    for (auto& rp : st->stop_waiters)
      rp.deliver(st->needed_kill);
    for (auto& rp : st->ready_waiters)
      rp.deliver(st->quit_reason);
    self->quit(st->quit_reason);
    return;
  }
  while (!st->deferred.empty() && !st->current_step && st->plan.empty()) {
    auto e = std::move(st->deferred.front());
    st->deferred.pop_front();
    handle_ending(self, st, std::move(e));
  }
}

// ---- failures --------------------------------------------------------------------------

void shut_down(sup_actor* self, const state_ptr& st, caf::error reason) {
  if (st->shutting_down)
    return;
  st->shutting_down = true;
  st->quit_reason = std::move(reason);
  st->deferred.clear();
  std::erase_if(st->plan, [](const step& s) { return s.kind == step::start; });
  for (auto it = st->children.rbegin(); it != st->children.rend(); ++it)
    st->plan.push_back({step::stop, it->spec.id, std::nullopt});
  run_next(self, st);
}

// The children a failure of children[i] takes down, by strategy, in start order.
std::vector<std::size_t> affected(const sup_state& st, std::size_t i) {
  std::vector<std::size_t> out;
  switch (st.flags.strategy) {
    case strategy::one_for_all:
      for (std::size_t k = 0; k < st.children.size(); ++k)
        out.push_back(k);
      break;
    case strategy::rest_for_one:
      for (std::size_t k = i; k < st.children.size(); ++k)
        out.push_back(k);
      break;
    default:
      out.push_back(i);
  }
  return out;
}

void restart(sup_actor* self, const state_ptr& st, std::size_t i) {
  auto group = affected(*st, i);
  for (auto k = group.rbegin(); k != group.rend(); ++k)
    if (*k != i)
      st->plan.push_back({step::stop, st->children[*k].spec.id, std::nullopt});
  for (auto k : group) {
    auto& c = st->children[k];
    if (c.spec.restart == restart_policy::temporary && k != i)
      continue;  // a temporary child stopped by the group is not brought back
    ++c.restarts;
    if (!is_live(c.state))  // a live sibling is stopped by its stop step first
      c.state = child_state::restarting;
    st->plan.push_back({step::start, c.spec.id, std::nullopt});
  }
  run_next(self, st);
}

void handle_ending(sup_actor* self, const state_ptr& st, ending e) {
  auto i = index_of(*st, e.id);
  if (i == st->children.size())
    return;
  auto& c = st->children[i];
  if (e.incarnation != c.incarnation)
    return;  // an earlier incarnation's end, already dealt with
  if (c.state == child_state::stopping) {
    c.state = child_state::stopped;
    c.current = nullptr;
    log::info(who(*st), ": stopped child '", c.spec.id, "': ", e.how,
              c.needed_kill ? " (needed the kill)" : "");
    if (c.needed_kill && st->shutting_down)
      st->needed_kill.push_back(c.spec.id);
    if (st->current_step && st->current_step->id == e.id)
      finish_step(self, st);
    return;
  }
  // It is down now, whatever is decided about it: a stop step planned for it (a group
  // restart, the shutdown) must find it stopped, not wait for an end that already came.
  c.current = nullptr;
  point_ref(c, {});
  c.state = child_state::stopped;
  if (st->current_step || !st->plan.empty() || st->shutting_down) {
    if (!st->shutting_down)
      st->deferred.push_back(std::move(e));
    return;
  }
  auto policy = c.spec.restart;
  if (policy == restart_policy::temporary
      || (policy == restart_policy::transient && !e.abnormal)) {
    log::info(who(*st), ": child '", c.spec.id, "' ended: ", e.how, "; not restarted (",
              policy == restart_policy::temporary ? "temporary" : "transient", ")");
    if (policy == restart_policy::temporary)
      st->children.erase(st->children.begin() + static_cast<std::ptrdiff_t>(i));
    return;
  }
  if (!st->window.allow(clock_type::now())) {
    auto why = "child '" + c.spec.id + "' ended (" + e.how + ") and more than "
               + std::to_string(st->flags.intensity) + " restart(s) within "
               + std::to_string(st->flags.period.count()) + " ms is too many";
    log::warn(who(*st), ": giving up: ", why);
    shut_down(self, st, make_error(errc::gave_up, who(*st) + " gave up: " + why));
    return;
  }
  log::warn(who(*st), ": child '", c.spec.id, "' ended: ", e.how, "; restarting (",
            st->window.recent(), " of ", st->flags.intensity, " allowed within ",
            st->flags.period.count(), " ms)");
  restart(self, st, i);
}

// ---- introspection ---------------------------------------------------------------------

child_status status_of(const child& c) {
  child_status s;
  s.id = c.spec.id;
  s.type = c.spec.type == child_type::supervisor ? "supervisor" : "worker";
  s.state = to_string(c.state);
  s.pid = c.proc && c.state == child_state::running ? c.proc->pid() : 0;
  s.restarts = c.restarts;
  if (c.state == child_state::running)
    s.uptime = std::chrono::duration<double>(clock_type::now() - c.started_at).count();
  return s;
}

// What `mproc ps` shows: this supervisor's own children (a nested supervisor reports its own).
value inspect_supervisor(const sup_state& st) {
  value::array_t children;
  for (const auto& c : st.children) {
    auto s = status_of(c);
    children.emplace_back(value::map_t{{"id", s.id},
                                       {"type", s.type},
                                       {"state", s.state},
                                       {"pid", s.pid},
                                       {"restarts", s.restarts}});
  }
  return value::map_t{{"name", st.flags.name}, {"children", std::move(children)}};
}

inspect_source make_source(sup_actor* self) {
  return inspect_source::of_actor("supervisor", caf::actor_cast<caf::actor_addr>(self),
                                  caf::make_message(sup_inspect_atom::value));
}

// Answers with this supervisor's tree, asking supervisor children for theirs.
caf::result<child_status> tree(sup_actor* self, const state_ptr& st) {
  auto me = std::make_shared<child_status>();
  me->id = st->flags.name;
  me->type = "supervisor";
  me->state = st->shutting_down ? "stopping" : "running";
  me->pid = ::getpid();
  std::vector<std::pair<std::size_t, caf::actor>> nested;
  for (auto& c : st->children) {
    me->children.push_back(status_of(c));
    if (c.spec.type == child_type::supervisor && c.state == child_state::running && c.current)
      nested.emplace_back(me->children.size() - 1, c.current);
  }
  if (nested.empty())
    return *me;
  auto rp = self->make_response_promise<child_status>();
  auto left = std::make_shared<std::size_t>(nested.size());
  for (auto& [slot, actor] : nested) {
    auto answer = [me, rp, left, slot = slot](std::optional<child_status> sub) mutable {
      if (sub) {
        sub->id = me->children[slot].id;  // the parent's name for it
        sub->pid = me->children[slot].pid;
        sub->restarts = me->children[slot].restarts;
        sub->uptime = me->children[slot].uptime;
        me->children[slot] = std::move(*sub);
      }
      if (--*left == 0)
        rp.deliver(*me);
    };
    self->request(actor, std::chrono::seconds{5}, sup_tree_atom::value)
      .then([answer](child_status& sub) mutable { answer(std::move(sub)); },
            [answer](caf::error&) mutable { answer(std::nullopt); });
  }
  return rp;
}

// ---- commands --------------------------------------------------------------------------

// Adds a child and plans its start; the answer comes when it started (or failed to).
caf::result<caf::message> add_child(sup_actor* self, const state_ptr& st, child_spec spec,
                                    bool answer_with_id) {
  if (st->shutting_down)
    return make_error(errc::node_shutdown, who(*st) + " is shutting down");
  if (find(*st, spec.id) != nullptr)
    return make_error(errc::bad_arguments, "a child '" + spec.id + "' exists already");
  if (auto err = check_spawn(spec.actor, spec.args))
    return err;
  child c;
  c.ref = spawn_child_ref(self->system(), spec.id);
  c.spec = std::move(spec);
  st->children.push_back(std::move(c));
  auto rp = self->make_response_promise();
  st->plan.push_back({step::start, st->children.back().spec.id, rp, answer_with_id});
  run_next(self, st);
  return caf::delegated<caf::message>{};
}

// A command that acts on a stopped (or live) child after the plan.
caf::result<void> plan_step(sup_actor* self, const state_ptr& st, step::kind_t kind,
                            const std::string& id) {
  auto* c = find(*st, id);
  if (c == nullptr)
    return make_error(errc::no_such_actor, "no child '" + id + "'");
  if (kind == step::start && is_live(c->state))
    return make_error(errc::bad_arguments, "child '" + id + "' is running");
  auto rp = self->make_response_promise();
  st->plan.push_back({kind, id, rp});
  run_next(self, st);
  return rp;
}

} // namespace

caf::behavior supervise(caf::event_based_actor* self, supervisor_flags flags,
                        std::vector<child_spec> children) {
  auto st = std::make_shared<sup_state>();
  st->window = restart_window{flags.intensity, flags.period};
  st->flags = std::move(flags);
  st->source = make_source(self);
  if (st->flags.strategy == strategy::simple_one_for_one) {
    if (!children.empty())
      st->templ = std::move(children.front());  // the template; children start on request
    children.clear();
  }
  for (auto& spec : children) {
    child c;
    c.ref = spawn_child_ref(self->system(), spec.id);
    c.spec = std::move(spec);
    st->plan.push_back({step::start, c.spec.id, std::nullopt});
    st->children.push_back(std::move(c));
  }
  // An exit message (from our own supervisor, or stop) is a request to stop in order.
  self->set_exit_handler([=](caf::exit_msg& msg) { shut_down(self, st, msg.reason); });
  self->set_down_handler([=](caf::down_msg& down) {
    for (auto& c : st->children)
      if (c.current && c.current.address() == down.source && !c.proc) {
        bool normal = !down.reason || down.reason == caf::exit_reason::user_shutdown;
        handle_ending(self, st, {c.spec.id, c.incarnation, !normal,
                                 normal ? "ended normally" : self->system().render(down.reason)});
        return;
      }
  });
  // If this actor dies without stopping its children (killed), they must not live on.
  self->attach_functor([st](const caf::error&) {
    for (auto& c : st->children)
      if (is_live(c.state))
        kill_now(c);
  });
  run_next(self, st);
  return {
    [=](sup_started_atom, const std::string& id, std::uint64_t inc, caf::error& err) {
      auto* c = find(*st, id);
      if (c == nullptr || c->incarnation != inc || c->state != child_state::starting)
        return;
      if (err) {
        start_failed(self, st, *c, err);
        return;
      }
      if (c->spec.type == child_type::worker) {
        started(self, st, *c, c->proc->actor());
        return;
      }
      // As OTP's start_link: a supervisor child counts as started once its children are.
      self->request(c->proc->actor(), caf::infinite, sup_ready_atom::value)
        .then(
          [=] {
            if (auto* now = find(*st, id); now && now->incarnation == inc
                                           && now->state == child_state::starting)
              started(self, st, *now, now->proc->actor());
          },
          [=](caf::error& e) {
            if (auto* now = find(*st, id); now && now->incarnation == inc
                                           && now->state == child_state::starting)
              start_failed(self, st, *now, e);
          });
    },
    [=](sup_exited_atom, const std::string& id, std::uint64_t inc, std::int32_t code) {
      auto* c = find(*st, id);
      if (c != nullptr && c->incarnation == inc && c->state == child_state::starting)
        return;  // its start fails too, and says so
      handle_ending(self, st, {id, inc, code != 0, describe_exit(code)});
    },
    [=](sup_kill_atom, const std::string& id, std::uint64_t inc) {
      auto* c = find(*st, id);
      if (c != nullptr && c->incarnation == inc && c->state == child_state::stopping) {
        log::warn(who(*st), ": child '", id, "' did not stop within ",
                  shutdown_timeout(c->spec).count(), " ms: killing it");
        kill_now(*c);
      }
    },
    [=](sup_ready_atom) -> caf::result<void> {
      if (!st->initializing)
        return st->init_error ? caf::result<void>{st->init_error} : caf::result<void>{caf::unit};
      auto rp = self->make_response_promise();
      st->ready_waiters.push_back(rp);
      return rp;
    },
    [=](sup_child_atom, const std::string& id) -> caf::result<caf::actor> {
      if (auto* c = find(*st, id))
        return c->ref;
      return make_error(errc::no_such_actor, who(*st) + " has no child '" + id + "'");
    },
    [=](sup_tree_atom) { return tree(self, st); },
    [=](sup_inspect_atom) { return inspect_supervisor(*st); },
    [=](sup_add_atom, child_spec& spec) { return add_child(self, st, std::move(spec), false); },
    [=](sup_add_atom, caf::message& args) -> caf::result<caf::message> {
      if (!st->templ)
        return make_error(errc::bad_arguments, "only a simple_one_for_one supervisor starts "
                                               "children from arguments");
      auto spec = *st->templ;
      spec.id = st->templ->id + "-" + std::to_string(st->next_dynamic++);
      spec.args = std::move(args);
      return add_child(self, st, std::move(spec), true);
    },
    [=](sup_terminate_atom, const std::string& id) { return plan_step(self, st, step::stop, id); },
    [=](sup_restart_atom, const std::string& id) { return plan_step(self, st, step::start, id); },
    [=](sup_delete_atom, const std::string& id) -> caf::result<void> {
      auto i = index_of(*st, id);
      if (i == st->children.size())
        return make_error(errc::no_such_actor, "no child '" + id + "'");
      if (is_live(st->children[i].state))
        return make_error(errc::bad_arguments, "child '" + id + "' is running: terminate it first");
      st->children.erase(st->children.begin() + static_cast<std::ptrdiff_t>(i));
      return caf::unit;
    },
    [=](sup_stop_atom) -> caf::result<std::vector<std::string>> {
      auto rp = self->make_response_promise();
      st->stop_waiters.push_back(rp);
      shut_down(self, st, caf::error{});
      return caf::delegated<std::vector<std::string>>{};
    },
  };
}

} // namespace mproc
