// What the supervisor actor's parts share (supervisor_actor.cpp: its behaviour, failures and
// commands; supervisor_steps.cpp: starting and stopping children one step at a time;
// supervisor_inspect.cpp: its tree and what `mproc ps` shows). Internal to those files.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <caf/actor.hpp>
#include <caf/error.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/response_promise.hpp>

#include "mproc/runtime/inspect.hpp"
#include "mproc/runtime/internal/restart_window.hpp"
#include "mproc/runtime/process.hpp"
#include "mproc/runtime/supervisor.hpp"

namespace mproc::detail::sup {

using clock_type = std::chrono::steady_clock;

enum class child_state { starting, running, restarting, stopping, stopped };

const char* to_string(child_state s);


struct child {
  child_spec spec;
  caf::actor ref;  // stable: follows the incarnations
  std::uint64_t incarnation = 0;
  child_state state = child_state::stopped;
  caf::actor current;
  caf::actor pending;  // an in-process supervisor child until its children started
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
  // forget: remove a child that its group's stop left down (a temporary sibling).
  enum kind_t { start, stop, forget } kind;
  std::string id;
  std::optional<caf::response_promise> done;  // answered when the step finished
  bool answer_with_id = false;                // with the child's id instead of ()
  bool new_child = false;                     // start_child's: removed if it cannot start
};

struct sup_state {
  supervisor_flags flags;
  std::vector<child> children;         // in start order
  std::optional<child_spec> templ;     // simple_one_for_one
  std::uint64_t next_dynamic = 1;
  // Incarnations are numbered across all children, so an event of a deleted child can never
  // pass for one of a later child under the same id.
  std::uint64_t last_incarnation = 0;
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

// supervisor_steps.cpp
// bad_arguments for what OTP refuses before it starts anything: duplicate or empty ids, a
// negative intensity, a period that is not positive, a simple_one_for_one without exactly
// one (template) spec. None when the supervisor can start.
caf::error check_supervisor(const supervisor_flags& flags, const std::vector<child_spec>& children);
std::string who(const sup_state& st);  // "supervisor 'name' (node ..., pid ...)", for logs
child* find(sup_state& st, const std::string& id);
std::size_t index_of(const sup_state& st, const std::string& id);  // size() when absent
void remove_child(sup_state& st, std::string id);                  // none when absent
bool is_live(child_state s);
std::chrono::milliseconds shutdown_timeout(const child_spec& spec);
void finish_step(sup_actor* self, const state_ptr& st, caf::error err = {});
void started(sup_actor* self, const state_ptr& st, child& c, caf::actor actor);
void start_failed(sup_actor* self, const state_ptr& st, child& c, const caf::error& err);
// A supervisor child counts as started once its own children have (OTP's start_link).
void await_ready(sup_actor* self, const state_ptr& st, child& c, caf::actor actor);
// Removes the planned starts; each one a caller waits for is answered with `why`.
void drop_starts(sup_state& st, const caf::error& why);
void kill_now(child& c);
// OTP deletes a temporary child that terminate_child stopped: called as that step ends
// (`c` is gone afterwards).
void forget_if_terminated(sup_state& st, const child& c);
void point_ref(child& c, caf::actor current);  // where the child's stable reference forwards
// Runs the plan's next step, or the deferred endings once the plan is done.
void run_next(sup_actor* self, const state_ptr& st);

// supervisor_actor.cpp
void handle_ending(sup_actor* self, const state_ptr& st, ending e);

// supervisor_inspect.cpp
caf::result<child_status> tree(sup_actor* self, const state_ptr& st);
value inspect_supervisor(const sup_state& st);
inspect_source make_source(sup_actor* self);

} // namespace mproc::detail::sup
