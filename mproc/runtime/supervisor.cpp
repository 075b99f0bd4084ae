#include "mproc/runtime/supervisor.hpp"

#include <condition_variable>
#include <iomanip>
#include <mutex>
#include <ostream>

#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>

#include "mproc/runtime/blocking.hpp"
#include "mproc/runtime/deadline.hpp"
#include "mproc/runtime/internal/supervisor_protocol.hpp"
#include "mproc/runtime/internal/supervisor_state.hpp"
#include "mproc/runtime/node.hpp"

namespace mproc {

using namespace detail;

struct supervisor::ending {
  std::mutex m;
  std::condition_variable cv;
  bool ended = false;
  caf::error reason;
};

supervisor::supervisor(node& owner, supervisor_flags flags, std::vector<child_spec> children)
  : node_(owner), end_(std::make_shared<ending>()) {
  if (auto err = sup::check_supervisor(flags, children))
    throw error{err, owner.system().render(err)};
  actor_ = owner.system().spawn(supervise, std::move(flags), std::move(children));
  actor_->attach_functor([end = end_](const caf::error& reason) {
    std::lock_guard guard{end->m};
    end->ended = true;
    end->reason = reason;
    end->cv.notify_all();
  });
  try {
    // Each child may take node_options::start_timeout; the supervisor reports every failure.
    node_.request(actor_, std::chrono::minutes{10}, sup_ready_atom::value);
  } catch (const error& e) {
    wait(std::chrono::minutes{5});  // it stops what it started before it ends
    // Ended before it read the request (its first child could not start at once): the
    // reason it ended with says why, not the request's no_such_actor.
    std::lock_guard guard{end_->m};
    if (e.code() == errc::no_such_actor && end_->ended && end_->reason)
      throw error{end_->reason, owner.system().render(end_->reason)};
    throw;
  }
}

supervisor::~supervisor() {
  try {
    if (!wait(millis{0}))
      stop();
  } catch (...) {
    // A destructor must not throw; the node's shutdown kills what is left.
  }
}

caf::actor supervisor::child(const std::string& id, millis timeout) {
  return node_.request<caf::actor>(actor_, timeout, sup_child_atom::value, id);
}

void supervisor::start_child(child_spec spec, millis timeout) {
  node_.request(actor_, timeout, sup_add_atom::value, std::move(spec));
}

std::string supervisor::start_child(caf::message args, millis timeout) {
  return node_.request<std::string>(actor_, timeout, sup_add_atom::value, std::move(args));
}

void supervisor::terminate_child(const std::string& id, millis timeout) {
  node_.request(actor_, timeout, sup_terminate_atom::value, id);
}

void supervisor::restart_child(const std::string& id, millis timeout) {
  node_.request(actor_, timeout, sup_restart_atom::value, id);
}

void supervisor::delete_child(const std::string& id, millis timeout) {
  node_.request(actor_, timeout, sup_delete_atom::value, id);
}

child_status supervisor::tree(millis timeout) {
  return node_.request<child_status>(actor_, timeout, sup_tree_atom::value);
}

bool supervisor::wait(millis timeout) {
  std::unique_lock lock{end_->m};
  if (!end_->ended && timeout.count() > 0)
    will_block();
  return end_->cv.wait_for(lock, capped(timeout), [&] { return end_->ended; });
}

caf::error supervisor::reason() const {
  std::lock_guard guard{end_->m};
  return end_->reason;
}

std::vector<std::string> supervisor::stop(millis timeout) {
  std::vector<std::string> killed;
  if (wait(millis{0}))
    return killed;
  try {
    killed = node_.request<std::vector<std::string>>(actor_, timeout, sup_stop_atom::value);
  } catch (const error&) {
    if (!wait(millis{0}))  // it ended meanwhile: that is what we wanted
      throw;
  }
  wait(timeout);
  return killed;
}

namespace {

void print_line(std::ostream& out, const child_status& s, int depth) {
  out << std::string(static_cast<std::size_t>(2 * depth), ' ') << s.id << "  " << s.type << "  "
      << s.state;
  if (s.pid != 0)
    out << "  pid " << s.pid;
  if (depth > 0)
    out << "  restarts " << s.restarts;
  if (s.state == "running" && depth > 0)
    out << "  up " << std::fixed << std::setprecision(1) << s.uptime << " s";
  out << '\n';
  for (const auto& c : s.children)
    print_line(out, c, depth + 1);
}

} // namespace

void print_tree(std::ostream& out, const child_status& tree) {
  print_line(out, tree, 0);
}

} // namespace mproc
