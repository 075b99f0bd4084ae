// Supervision, after Erlang/OTP's supervisor: children described as data, restarted by
// policy, restart intensity as a sliding window, shutdown in reverse start order with
// escalation to kill. docs/supervision.md explains the model.
//
//   mproc::supervisor sup{node, {.strategy = mproc::strategy::one_for_one, .intensity = 3},
//                         {{.id = "db", .actor = "db_worker"},
//                          {.id = "web", .actor = "web_worker", .args = caf::make_message(8080)}}};
//   node.request<std::string>(sup.child("db"), 1s, caf::get_atom::value);  // survives restarts
//
// A supervisor is an actor: `mproc::supervise(self, flags, children)` turns any event-based
// actor into one, which is how a supervisor runs inside a child process (register a function
// returning it with MPROC_ACTOR and name it in a child_spec of type supervisor).
#pragma once

#include <chrono>
#include <cstdint>
#include <iosfwd>
#include <memory>
#include <string>
#include <vector>

#include <caf/actor.hpp>
#include <caf/error.hpp>
#include <caf/fwd.hpp>
#include <caf/message.hpp>

#include "mproc/serialization/codec.hpp"

namespace mproc {

class node;

// When a child that ended is started again (OTP's restart types).
enum class restart_policy : std::uint8_t {
  permanent,  // always
  transient,  // only after an abnormal end: a non-zero exit code, a signal, an error
  temporary,  // never; the child is removed once it ended
};

// Which children a failure takes down with it.
enum class strategy : std::uint8_t {
  one_for_one,        // only the failed child is restarted
  one_for_all,        // all children are stopped and restarted
  rest_for_one,       // the failed child and those started after it
  simple_one_for_one, // dynamic: identical children from one template spec, started later
};

enum class child_type : std::uint8_t { worker, supervisor };

struct child_spec {
  std::string id;                  // unique within its supervisor
  std::string actor;               // registered name (MPROC_ACTOR) of what to run
  caf::message args;               // its arguments
  bool in_process = false;         // false: a new OS process (the default); true: this node
  restart_policy restart = restart_policy::permanent;  // OTP's default
  // Time between asking the child to stop and killing it. OTP's defaults: 5 s for workers,
  // infinity for supervisors (which need the time to stop their own children); here 30 s.
  std::chrono::milliseconds shutdown{0};  // 0: the default for the type
  bool brutal_kill = false;        // kill at once instead (OTP's brutal_kill)
  child_type type = child_type::worker;
};

struct supervisor_flags {
  mproc::strategy strategy = mproc::strategy::one_for_one;  // OTP's default
  // More than `intensity` restarts within `period` and the supervisor gives up: it stops all
  // children and ends with errc::gave_up, which its own supervisor sees as a failure.
  int intensity = 1;                          // OTP's default
  std::chrono::milliseconds period{5000};     // OTP's default: 5 s
  std::string name = "supervisor";            // for logs and the tree
};

// One node of a supervision tree, as data (supervisor::tree()).
struct child_status {
  std::string id;
  std::string type;      // "worker", "supervisor"
  std::string state;     // "starting", "running", "restarting", "stopping", "stopped"
  std::int64_t pid = 0;  // 0 for an in-process child or one not running
  std::int32_t restarts = 0;
  double uptime = 0;     // seconds since this incarnation started
  std::vector<child_status> children;  // of a supervisor child
  MSGPACK_DEFINE(id, type, state, pid, restarts, uptime, children);
};

// An indented rendering of a tree, one child a line.
void print_tree(std::ostream& out, const child_status& tree);

// Makes `self` a supervisor of `children`, started in order. The behaviour answers the
// messages listed in docs/supervision.md; the blocking `supervisor` class wraps them.
caf::behavior supervise(caf::event_based_actor* self, supervisor_flags flags,
                        std::vector<child_spec> children);

// A supervisor in this node, with a blocking face for plain code.
class supervisor {
public:
  using millis = std::chrono::milliseconds;

  // Starts the supervisor and its children in order; throws mproc::error when one cannot
  // start (those already started are stopped again), as OTP's start_link fails.
  supervisor(node& owner, supervisor_flags flags, std::vector<child_spec> children);
  // Stops the children (reverse order) and the supervisor.
  ~supervisor();
  supervisor(const supervisor&) = delete;
  supervisor& operator=(const supervisor&) = delete;

  caf::actor actor() const { return actor_; }
  // A reference to child `id` that follows it across restarts. While the child is down,
  // requests to it fail with errc::not_running and other messages are dropped (counted in
  // the logs): an error *message* would kill a CAF sender with the default error handler.
  caf::actor child(const std::string& id, millis timeout = std::chrono::seconds{10});

  void start_child(child_spec spec, millis timeout = std::chrono::seconds{30});
  // simple_one_for_one: a new child from the template; returns its id.
  std::string start_child(caf::message args, millis timeout = std::chrono::seconds{30});
  void terminate_child(const std::string& id, millis timeout = std::chrono::seconds{60});
  void restart_child(const std::string& id, millis timeout = std::chrono::seconds{30});
  void delete_child(const std::string& id, millis timeout = std::chrono::seconds{10});

  child_status tree(millis timeout = std::chrono::seconds{10});
  // Waits for the supervisor to end (it gave up, or stop()); true if it did. reason() then
  // says why (errc::gave_up, or none after stop()).
  bool wait(millis timeout);
  caf::error reason() const;
  // Orderly shutdown: children in reverse start order, each asked to stop and killed after
  // its shutdown timeout; then the supervisor. Returns the ids of those that needed the kill.
  std::vector<std::string> stop(millis timeout = std::chrono::minutes{5});

private:
  node& node_;
  caf::actor actor_;
  struct ending;
  std::shared_ptr<ending> end_;
};

} // namespace mproc
