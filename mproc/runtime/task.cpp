#include "mproc/runtime/task.hpp"

#include <map>
#include <stdexcept>
#include <typeinfo>

#include <caf/actor_system.hpp>
#include <caf/blocking_actor.hpp>

#include "mproc/runtime/actor_registry.hpp"
#include "mproc/runtime/errors.hpp"
#include "mproc/runtime/internal/name_registry.hpp"
#include "mproc/serialization/type_registry.hpp"

namespace mproc {

namespace detail {

namespace {

// Filled by MPROC_TASK during static initialisation; read-only afterwards.
struct task_registry {
  name_registry<task_entry> by_name{"task"};
  std::map<const void*, std::string> by_function;  // what pool.map(f, ...) is given
};

task_registry& tasks() {
  static task_registry instance;
  return instance;
}

// A process whose target is a task runs this actor: arguments (task name, its arguments...).
bool task_target_accepts(const caf::message& m) {
  if (m.size() == 0 || !m.match_element<std::string>(0))
    return false;
  const auto* task = find_task(m.get_as<std::string>(0));
  return task && task->accepts(m);
}

void run_task_target(caf::blocking_actor*, caf::message m) {
  find_task(m.get_as<std::string>(0))->call(m);
}

caf::actor spawn_task_target(caf::actor_system& sys, const char* name, const caf::message& m) {
  // guarded: an exception from the task is printed and ends the actor, hence the process
  return caf::actor{sys.spawn(guarded<&run_task_target, caf::blocking_actor, caf::message>, name, m)};
}

[[maybe_unused]] const bool task_target_registered =
  register_actor({task_actor, {}, &task_target_accepts, &spawn_task_target});

} // namespace

bool register_task(task_entry entry) {
  auto& r = tasks();
  const auto& added = r.by_name.add(std::move(entry));
  r.by_function.emplace(added.function, added.name);
  return true;
}

const task_entry* find_task(const std::string& name) {
  return tasks().by_name.find(name);
}

const task_entry* find_task(const void* function) {
  auto i = tasks().by_function.find(function);
  return i == tasks().by_function.end() ? nullptr : find_task(i->second);
}

void pack_failures(wire::packer& out,
                   const std::vector<std::pair<std::uint32_t, std::string>>& failures) {
  out.pack_map(static_cast<std::uint32_t>(failures.size()));
  for (const auto& [index, why] : failures) {
    out.pack(index);
    out.pack(why);
  }
}

} // namespace detail

std::string task_name(const void* function) {
  if (const auto* e = detail::find_task(function))
    return e->name;
  auto err = make_error(errc::unknown_actor_name,
                        "this function is not a registered task: add MPROC_TASK(its name)");
  throw error(err, "this function is not a registered task: add MPROC_TASK(its name)");
}

} // namespace mproc
