// The supervisor's plans, step by step: start a child (a process, or an actor in this node),
// stop one (asked, then killed after its shutdown time), and what finishes each step. Part
// of the supervisor actor (supervisor_state.hpp).
#include <unistd.h>

#include <cstdio>

#include <caf/actor_system.hpp>
#include <caf/send.hpp>

#include "mproc/runtime/actor_registry.hpp"
#include "mproc/runtime/errors.hpp"
#include "mproc/runtime/internal/child_ref.hpp"
#include "mproc/runtime/internal/supervisor_protocol.hpp"
#include "mproc/runtime/internal/supervisor_state.hpp"
#include "mproc/runtime/log.hpp"
#include "mproc/runtime/node.hpp"

namespace mproc::detail::sup {

// OTP's default for workers; for supervisors, long enough to stop their own children.
constexpr std::chrono::milliseconds worker_shutdown{5000};
constexpr std::chrono::milliseconds supervisor_shutdown{30000};

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

void remove_child(sup_state& st, std::string id) {
  // A copy: `id` may be the removed child's own, which the erase overwrites.
  std::erase_if(st.children, [&id](const child& c) { return c.spec.id == id; });
}

bool is_live(child_state s) {
  return s == child_state::starting || s == child_state::running || s == child_state::stopping;
}

std::chrono::milliseconds shutdown_timeout(const child_spec& spec) {
  if (spec.shutdown.count() > 0)
    return spec.shutdown;
  return spec.type == child_type::supervisor ? supervisor_shutdown : worker_shutdown;
}

caf::error check_supervisor(const supervisor_flags& flags, const std::vector<child_spec>& children) {
  auto bad = [&](const std::string& why) {
    return make_error(errc::bad_arguments, "supervisor '" + flags.name + "': " + why);
  };
  if (flags.intensity < 0)
    return bad("intensity is " + std::to_string(flags.intensity) + "; it counts restarts, >= 0");
  if (flags.period.count() <= 0)
    return bad("period is " + std::to_string(flags.period.count()) + " ms; it must be positive");
  if (flags.strategy == strategy::simple_one_for_one && children.size() != 1)
    return bad("simple_one_for_one takes exactly one child spec, its template ("
               + std::to_string(children.size()) + " given)");
  for (std::size_t i = 0; i < children.size(); ++i) {
    if (children[i].id.empty())
      return bad("child " + std::to_string(i) + " has no id");
    for (std::size_t k = 0; k < i; ++k)
      if (children[k].id == children[i].id)
        return bad("two children have the id '" + children[i].id + "'");
  }
  return {};
}

// ---- steps -----------------------------------------------------------------------------

// Answers the caller waiting for the current step, if one is (CAF 0.17 never tells a caller
// that a promise was dropped: it would wait out its timeout).
void answer_step(const state_ptr& st, caf::error err) {
  if (st->current_step && st->current_step->done) {
    auto& s = *st->current_step;
    if (err)
      s.done->deliver(err);
    else if (s.answer_with_id)
      s.done->deliver(s.id);
    else
      s.done->deliver(caf::unit);
  }
}

void finish_step(sup_actor* self, const state_ptr& st, caf::error err) {
  answer_step(st, std::move(err));
  st->current_step.reset();
  run_next(self, st);
}

void point_ref(child& c, caf::actor current) {
  caf::anon_send(c.ref, child_current{std::move(current)});
}

void started(sup_actor* self, const state_ptr& st, child& c, caf::actor actor) {
  c.pending = nullptr;
  c.current = std::move(actor);
  c.state = child_state::running;
  c.started_at = clock_type::now();
  point_ref(c, c.current);
  log::info(who(*st), ": started child '", c.spec.id, "' (",
            c.proc ? "pid " + std::to_string(c.proc->pid()) : std::string{"in-process"}, ")");
  finish_step(self, st);
}

void start_failed(sup_actor* self, const state_ptr& st, child& c, const caf::error& err) {
  // This incarnation ends here. The process a failed start leaves behind (killed by the
  // start) is reaped a moment later: its exit, under the old number, must not count as a
  // second end — restarted after a restart_child that failed, or counted twice.
  c.incarnation = ++st->last_incarnation;
  kill_now(c);  // a supervisor process whose children did not start may still run
  c.state = child_state::stopped;
  c.proc.reset();
  c.pending = nullptr;
  auto text = self->system().render(err);
  log::warn(who(*st), ": child '", c.spec.id, "' failed to start: ", text);
  bool asked = st->current_step && st->current_step->done;
  if (asked) {
    // start_child / restart_child: the caller gets the error, as from OTP; nothing is retried
    // or counted, and a child that start_child added is not kept.
    if (st->current_step->new_child)
      remove_child(*st, c.spec.id);
  } else if (st->shutting_down) {
    // Killed by the shutdown while it started (supervisor_actor.cpp): nothing to decide.
  } else if (st->initializing) {
    // OTP: the first child that cannot start ends the start-up; no later one is started.
    if (!st->init_error)
      st->init_error = err;
    drop_starts(*st, err);
  } else {  // a restart: policy and intensity decide
    st->deferred.push_back({c.spec.id, c.incarnation, true, "failed to start: " + text});
  }
  finish_step(self, st, err);
}

void forget_if_terminated(sup_state& st, const child& c) {
  if ((c.spec.restart == restart_policy::temporary || st.templ) && st.current_step
      && st.current_step->kind == step::stop && st.current_step->done)
    remove_child(st, c.spec.id);
}

void drop_starts(sup_state& st, const caf::error& why) {
  std::erase_if(st.plan, [&](step& s) {
    if (s.kind != step::start)
      return false;
    if (s.done)
      s.done->deliver(why);
    return true;
  });
}

void await_ready(sup_actor* self, const state_ptr& st, child& c, caf::actor actor) {
  auto id = c.spec.id;
  auto inc = c.incarnation;
  auto still_starting = [st, id, inc]() -> child* {
    auto* now = find(*st, id);
    return now && now->incarnation == inc && now->state == child_state::starting ? now
                                                                                   : nullptr;
  };
  self->request(actor, caf::infinite, sup_ready_atom::value)
    .then(
      [=] {
        if (auto* now = still_starting())
          started(self, st, *now, actor);
      },
      [=](caf::error& e) {
        // A supervisor whose children cannot start ends with the reason, often before the
        // question reaches it (no_such_actor from its process); its own log names the child
        // and why.
        if (e == caf::sec::request_receiver_down || code_of(e) == errc::no_such_actor)
          e = make_error(errc::spawn_failed, "supervisor child '" + id
                                               + "' ended before its own children started");
        if (auto* now = still_starting())
          start_failed(self, st, *now, e);
      });
}

void start_process_child(sup_actor* self, const state_ptr& st, child& c) {
  c.proc.emplace(this_node(), c.spec.actor,
                 process_options{.name = st->flags.name + "/" + c.spec.id, .daemon = true},
                 c.spec.args);
  caf::actor me = caf::actor_cast<caf::actor>(self);
  auto id = c.spec.id;
  auto inc = c.incarnation;
  c.proc->on_exit([me, id, inc](int code) {
    caf::anon_send(me, sup_event{sup_event::exited, id, inc, code, {}});
  });
  c.proc->start([me, id, inc](caf::error err) {
    caf::anon_send(me, sup_event{sup_event::started, id, inc, 0, std::move(err)});
  });
}

void start_in_process_child(sup_actor* self, const state_ptr& st, child& c) {
  auto actor = spawn_registered(self->system(), c.spec.actor, c.spec.args);
  if (!actor) {
    start_failed(self, st, c, actor.error());
    return;
  }
  self->monitor(*actor);
  if (c.spec.type == child_type::supervisor) {
    c.pending = *actor;  // so that a kill of this supervisor reaches it meanwhile
    await_ready(self, st, c, std::move(*actor));
  } else {
    started(self, st, c, std::move(*actor));
  }
}

void do_start(sup_actor* self, const state_ptr& st, child& c) {
  c.incarnation = ++st->last_incarnation;
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
  else if (c.pending)
    caf::anon_send_exit(c.pending, caf::exit_reason::kill);
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
  self->delayed_send(self, shutdown_timeout(c.spec),
                     sup_event{sup_event::kill, c.spec.id, c.incarnation, 0, {}});
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
    if (st->current_step->kind == step::forget) {
      if (!is_live(c->state))
        remove_child(*st, c->spec.id);
      st->current_step.reset();
      continue;
    }
    if (st->current_step->kind == step::start) {
      if (is_live(c->state)) {  // a restart_child queued behind the group restart that did it
        finish_step(self, st, make_error(errc::bad_arguments,
                                         "child '" + c->spec.id + "' is running"));
        return;
      }
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
    forget_if_terminated(*st, *c);
    answer_step(st, {});  // not running: stopped already, as OTP answers ok
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
    if (!st->shutting_down) {  // stopped while it started: not ready, see below
      for (auto& rp : st->ready_waiters)
        rp.deliver(caf::unit);
      st->ready_waiters.clear();
    }
  }
  if (st->shutting_down) {
    for (auto& rp : st->stop_waiters)
      rp.deliver(st->needed_kill);
    auto why = st->quit_reason ? st->quit_reason
                               : make_error(errc::node_shutdown,
                                            who(*st) + " was stopped before its children started");
    for (auto& rp : st->ready_waiters)
      rp.deliver(why);
    self->quit(st->quit_reason);
    return;
  }
  while (!st->deferred.empty() && !st->current_step && st->plan.empty()) {
    auto e = std::move(st->deferred.front());
    st->deferred.pop_front();
    handle_ending(self, st, std::move(e));
  }
}

} // namespace mproc::detail::sup
