#include "mproc/actors/task.hpp"

#include <map>
#include <stdexcept>
#include <typeinfo>

#include "mproc/runtime/errors.hpp"
#include "mproc/serialization/type_registry.hpp"

namespace mproc {

namespace detail {

namespace {

// Filled by MPROC_TASK during static initialisation; read-only afterwards.
struct task_registry {
  std::map<std::string, task_entry, std::less<>> by_name;
  std::map<const void*, std::string> by_function;
};

task_registry& tasks() {
  static task_registry instance;
  return instance;
}

} // namespace

bool register_task(task_entry entry) {
  auto& r = tasks();
  auto name = entry.name;
  auto fn = entry.function;
  if (!r.by_name.emplace(name, std::move(entry)).second)
    throw std::logic_error("two tasks are registered as '" + name + "'");
  r.by_function.emplace(fn, name);
  return true;
}

const task_entry* find_task(const std::string& name) {
  auto i = tasks().by_name.find(name);
  return i == tasks().by_name.end() ? nullptr : &i->second;
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
