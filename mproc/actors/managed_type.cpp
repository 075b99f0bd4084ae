#include "mproc/actors/managed_type.hpp"

#include <mutex>
#include <stdexcept>
#include <typeindex>
#include <unordered_map>

#include "mproc/serialization/type_registry.hpp"

namespace mproc::detail {

namespace {

// Filled before main() by MPROC_MANAGED lines; read by the manager actor and proxies.
struct managed_registry {
  std::mutex m;
  std::map<std::string, managed_type_entry, std::less<>> by_name;
  std::unordered_map<std::type_index, managed_type_entry*> by_type;
};

managed_registry& registry() {
  static managed_registry r;
  return r;
}

} // namespace

managed_type_entry& managed_type_of(const std::type_info& type, const char* name,
                                    std::shared_ptr<void> (*make)()) {
  auto& r = registry();
  std::lock_guard guard{r.m};
  if (auto i = r.by_type.find(type); i != r.by_type.end()) {
    if (i->second->name != name)
      throw std::logic_error(std::string{"MPROC_MANAGED: a type registered as '"}
                             + i->second->name + "' and as '" + name + "'");
    return *i->second;
  }
  auto [at, added] = r.by_name.try_emplace(name, managed_type_entry{name, make, {}});
  if (!added)
    throw std::logic_error(std::string{"MPROC_MANAGED: two types named '"} + name + "'");
  r.by_type.emplace(type, &at->second);
  return at->second;
}

void add_managed_method(managed_type_entry& entry, const char* method, managed_method fn) {
  std::lock_guard guard{registry().m};
  auto [at, added] = entry.methods.emplace(method, fn);
  if (!added && at->second != fn)  // the same line seen twice (a header) is fine
    throw std::logic_error("MPROC_MANAGED: " + entry.name + "::" + method + " registered twice");
}

const managed_type_entry* find_managed_type(std::string_view name) {
  auto& r = registry();
  std::lock_guard guard{r.m};
  auto i = r.by_name.find(name);
  return i == r.by_name.end() ? nullptr : &i->second;
}

const std::string& managed_name_of(const std::type_info& type) {
  auto& r = registry();
  std::lock_guard guard{r.m};
  if (auto i = r.by_type.find(type); i != r.by_type.end())
    return i->second->name;
  auto text = std::string{"no MPROC_MANAGED line registers "} + wire::demangle(type.name());
  throw error(make_error(errc::unknown_actor_name, text), text);
}

void throw_managed_arity(const char* method, std::size_t wanted, std::size_t got) {
  auto text = std::string{method} + " takes " + std::to_string(wanted) + " arguments, not "
              + std::to_string(got);
  throw error(make_error(errc::bad_arguments, text), text);
}

void rethrow_as_raised() {
  try {
    throw;
  } catch (const std::exception& e) {
    throw managed_method_raised{e.what()};
  } catch (...) {
    throw managed_method_raised{"a non-std::exception"};
  }
}

} // namespace mproc::detail
