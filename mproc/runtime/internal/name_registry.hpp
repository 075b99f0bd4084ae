// What the registration macros (MPROC_ACTOR, MPROC_TASK, MPROC_PROCESS_CLASS) fill before
// main() runs: entries found by name, the same in every process of the program (each runs
// the same binary), read-only once main() runs. One template for actors and tasks.
#pragma once

#include <map>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace mproc::detail {

template <class Entry>  // Entry has a std::string `name`
class name_registry {
public:
  // `kind` names an entry in errors: "actor", "task".
  explicit name_registry(const char* kind) : kind_(kind) {}

  // Throws std::logic_error when the name is taken: a name must mean one thing in every
  // process.
  const Entry& add(Entry entry) {
    auto name = entry.name;
    auto [at, fresh] = by_name_.emplace(name, std::move(entry));
    if (!fresh)
      throw std::logic_error(std::string{"two "} + kind_ + "s are registered as '" + name + "'");
    return at->second;
  }

  const Entry* find(std::string_view name) const {
    auto at = by_name_.find(name);
    return at == by_name_.end() ? nullptr : &at->second;
  }

  // Sorted.
  std::vector<std::string> names() const {
    std::vector<std::string> out;
    out.reserve(by_name_.size());
    for (const auto& [name, entry] : by_name_)
      out.push_back(name);
    return out;
  }

private:
  const char* kind_;
  std::map<std::string, Entry, std::less<>> by_name_;
};

} // namespace mproc::detail
