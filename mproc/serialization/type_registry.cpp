#include "mproc/serialization/type_registry.hpp"

#include <cxxabi.h>

#include <algorithm>
#include <cstdlib>
#include <stdexcept>

namespace mproc::wire {

void type_registry::add(type_entry entry) {
  if (frozen_)
    throw std::logic_error("message type '" + entry.name
                           + "' registered after a node started: register types at namespace "
                             "scope (MPROC_MESSAGE) so they exist before main()");
  if (auto i = by_type_.find(entry.type); i != by_type_.end())
    return;
  if (auto i = by_tag_.find(entry.name); i != by_tag_.end())
    throw std::logic_error("message type name '" + entry.name + "' is used by both "
                           + demangle(i->second->type.name()) + " and "
                           + demangle(entry.type.name()));
  entries_.push_back(std::make_unique<type_entry>(std::move(entry)));
  const type_entry* e = entries_.back().get();
  by_type_.emplace(e->type, e);
  by_tag_.emplace(e->name, e);
}

const type_entry* type_registry::find(std::type_index type) const {
  auto i = by_type_.find(type);
  return i == by_type_.end() ? nullptr : i->second;
}

const type_entry* type_registry::find(std::string_view tag) const {
  // A stream of messages asks for the same tag over and over: the last answer is checked
  // before hashing (a twelfth of a one-way flood's receiving thread). Entries are never
  // removed, so the pointer stays good; threads asking for different tags only miss more.
  const type_entry* last = last_found_.load(std::memory_order_acquire);
  if (last != nullptr && last->name == tag)
    return last;
  auto i = by_tag_.find(tag);
  if (i == by_tag_.end())
    return nullptr;
  last_found_.store(i->second, std::memory_order_release);
  return i->second;
}

std::vector<std::string> type_registry::tags() const {
  std::vector<std::string> out;
  for (const auto& e : entries_)
    out.push_back(e->name);
  std::sort(out.begin(), out.end());
  return out;
}

type_registry& types() {
  static type_registry instance;
  return instance;
}

std::string demangle(const char* mangled) {
  int status = 0;
  char* name = abi::__cxa_demangle(mangled, nullptr, nullptr, &status);
  std::string out = status == 0 && name ? name : mangled;
  std::free(name);
  return out;
}

} // namespace mproc::wire
