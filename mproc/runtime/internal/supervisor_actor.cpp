// The supervisor actor behind mproc::supervise (runtime/supervisor.hpp).
//
// Everything it does to children is a *plan* of steps — start child X, stop child Y — run
// one at a time, each finished by an event: the start settled, the child's exit arrived.
// Exits of children that happen while a plan runs wait until it is done, then are handled in
// order, as OTP's supervisor handles one EXIT at a time. Nothing here blocks: processes
// start asynchronously and their ends arrive as messages.
#include <unistd.h>

#include <algorithm>
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
#include "mproc/runtime/internal/supervisor_state.hpp"
#include "mproc/runtime/message_types.hpp"
#include "mproc/runtime/node.hpp"
#include "mproc/runtime/supervisor.hpp"

namespace mproc {

namespace detail::sup {

// ---- failures --------------------------------------------------------------------------

void shut_down(sup_actor* self, const state_ptr& st, caf::error reason) {
  if (st->shutting_down)
    return;
  st->shutting_down = true;
  st->quit_reason = std::move(reason);
  st->deferred.clear();
  drop_starts(*st, make_error(errc::node_shutdown, who(*st) + " is shutting down"));
  // A supervisor child still starting is killed, not waited for: one stopped (SIGSTOP) or
  // stuck before its own children started would hold the shutdown forever (a worker's
  // start has start_timeout). Its start then fails, which finishes the step.
  for (auto& c : st->children)
    if (c.state == child_state::starting && c.spec.type == child_type::supervisor) {
      kill_now(c);
      st->needed_kill.push_back(c.spec.id);
    }
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
    if (c.spec.restart == restart_policy::temporary && k != i) {
      // A temporary child stopped by the group is not brought back: removed, as OTP does.
      st->plan.push_back({step::forget, c.spec.id, std::nullopt});
      continue;
    }
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
    if (c.needed_kill && st->shutting_down && std::ranges::count(st->needed_kill, c.spec.id) == 0)
      st->needed_kill.push_back(c.spec.id);  // (once: the shutdown may have killed its start)
    if (st->current_step && st->current_step->id == e.id) {
      forget_if_terminated(*st, c);
      finish_step(self, st);
    }
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
    // A simple_one_for_one's children are made for a job each: one that is not restarted
    // goes, as in OTP, or the list would keep every finished one.
    if (policy == restart_policy::temporary || st->templ)
      remove_child(*st, c.spec.id);
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

} // namespace detail::sup

namespace {

using namespace detail;
using namespace detail::sup;

[[maybe_unused]] const bool child_status_registered =
  detail::register_message_type<child_status>();

// ---- commands --------------------------------------------------------------------------

// Adds a child and plans its start; the answer comes when it started (or failed to).
// OTP's {error, simple_one_for_one}: such a supervisor's children come from its template
// and go when they end; none is added from a spec, restarted or deleted by id.
caf::error simple_refuses(const char* what) {
  return make_error(errc::bad_arguments, std::string{what}
                                           + " is not for a simple_one_for_one supervisor (its "
                                             "children come from start_child(args))");
}

caf::result<caf::message> add_child(sup_actor* self, const state_ptr& st, child_spec spec,
                                    bool answer_with_id) {
  if (st->shutting_down)
    return make_error(errc::node_shutdown, who(*st) + " is shutting down");
  if (spec.id.empty())
    return make_error(errc::bad_arguments, "a child needs an id");
  if (find(*st, spec.id) != nullptr)
    return make_error(errc::bad_arguments, "a child '" + spec.id + "' exists already");
  if (auto err = check_spawn(spec.actor, spec.args))
    return err;
  child c;
  c.ref = spawn_child_ref(self->system(), spec.id);
  c.spec = std::move(spec);
  st->children.push_back(std::move(c));
  auto rp = self->make_response_promise();
  st->plan.push_back({.kind = step::start, .id = st->children.back().spec.id, .done = rp,
                      .answer_with_id = answer_with_id, .new_child = true});
  run_next(self, st);
  return caf::delegated<caf::message>{};
}

// A command that acts on a stopped (or live) child after the plan.
caf::result<void> plan_step(sup_actor* self, const state_ptr& st, step::kind_t kind,
                            const std::string& id) {
  if (st->shutting_down)
    return make_error(errc::node_shutdown, who(*st) + " is shutting down");
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

// ---- events of its children ----------------------------------------------------------

void on_started(sup_actor* self, const state_ptr& st, sup_event& e) {
  auto* c = find(*st, e.id);
  if (c == nullptr || c->incarnation != e.inc || c->state != child_state::starting || !c->proc)
    return;  // (only a process child's start is told by this event)
  if (e.error) {
    start_failed(self, st, *c, e.error);
    return;
  }
  if (c->spec.type == child_type::worker) {
    started(self, st, *c, c->proc->actor());
    return;
  }
  await_ready(self, st, *c, c->proc->actor());
}

void on_exited(sup_actor* self, const state_ptr& st, const sup_event& e) {
  auto* c = find(*st, e.id);
  if (c != nullptr && c->incarnation == e.inc && c->state == child_state::starting)
    return;  // its start fails too, and says so
  handle_ending(self, st, {e.id, e.inc, e.code != 0, describe_exit(e.code)});
}

void on_kill_due(const state_ptr& st, const sup_event& e) {
  auto* c = find(*st, e.id);
  if (c != nullptr && c->incarnation == e.inc && c->state == child_state::stopping) {
    log::warn(who(*st), ": child '", e.id, "' did not stop within ",
              shutdown_timeout(c->spec).count(), " ms: killing it");
    kill_now(*c);
  }
}

void on_event(sup_actor* self, const state_ptr& st, sup_event& e) {
  switch (e.what) {
    case sup_event::started:
      return on_started(self, st, e);
    case sup_event::exited:
      return on_exited(self, st, e);
    case sup_event::kill:
      return on_kill_due(st, e);
  }
}

} // namespace

caf::behavior supervise(caf::event_based_actor* self, supervisor_flags flags,
                        std::vector<child_spec> children) {
  using namespace detail::sup;
  auto st = std::make_shared<sup_state>();
  st->window = restart_window{flags.intensity, flags.period};
  st->flags = std::move(flags);
  st->source = make_source(self);
  if (auto err = check_supervisor(st->flags, children)) {
    st->init_error = std::move(err);  // ends at once (run_next below), with this reason
    children.clear();
  }
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
  // Asked to stop (its parent supervisor, the node's end, a kill). A normal exit message
  // (a linked actor's normal end, or anyone's, from any peer) is no such request, as for an
  // actor without the handler.
  self->set_exit_handler([=](caf::exit_msg& msg) {
    if (msg.reason)
      shut_down(self, st, msg.reason);
  });
  self->set_down_handler([=](caf::down_msg& down) {
    for (auto& c : st->children) {
      if (c.pending && c.pending.address() == down.source && c.state == child_state::starting) {
        // Ended holding the ready question (killed, crashed): CAF 0.17 never answers it.
        start_failed(self, st, c, make_error(errc::spawn_failed, "supervisor child '" + c.spec.id
                                               + "' ended before its own children started: "
                                               + self->system().render(down.reason)));
        return;
      }
      if (c.current && c.current.address() == down.source && !c.proc) {
        bool normal = !down.reason || down.reason == caf::exit_reason::user_shutdown;
        handle_ending(self, st, {c.spec.id, c.incarnation, !normal,
                                 normal ? "ended normally" : self->system().render(down.reason)});
        return;
      }
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
    [=](sup_event& e) { on_event(self, st, e); },
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
    [=](sup_add_atom, child_spec& spec) -> caf::result<caf::message> {
      if (st->templ)
        return simple_refuses("a child spec");
      return add_child(self, st, std::move(spec), false);
    },
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
    [=](sup_restart_atom, const std::string& id) -> caf::result<void> {
      if (st->templ)
        return simple_refuses("restart_child");
      return plan_step(self, st, step::start, id);
    },
    [=](sup_delete_atom, const std::string& id) -> caf::result<void> {
      if (st->templ)
        return simple_refuses("delete_child");
      auto* c = find(*st, id);
      if (c == nullptr)
        return make_error(errc::no_such_actor, "no child '" + id + "'");
      if (is_live(c->state))
        return make_error(errc::bad_arguments, "child '" + id + "' is running: terminate it first");
      if (c->state == child_state::restarting)  // OTP's {error, restarting}
        return make_error(errc::bad_arguments, "child '" + id + "' is being restarted");
      remove_child(*st, id);
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
