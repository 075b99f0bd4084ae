// The supervisor's tree (supervisor::tree(), nested supervisors asked in turn) and what
// `mproc ps` shows of it. Part of the supervisor actor (supervisor_state.hpp).
#include <unistd.h>

#include "mproc/runtime/internal/supervisor_protocol.hpp"
#include "mproc/runtime/internal/supervisor_state.hpp"
#include "mproc/runtime/message_types.hpp"

namespace mproc::detail::sup {

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

} // namespace mproc::detail::sup
