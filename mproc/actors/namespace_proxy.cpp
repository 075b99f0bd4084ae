#include "mproc/actors/namespace_proxy.hpp"

#include <algorithm>

#include "mproc/runtime/message_types.hpp"

namespace mproc {

const bool namespace_proxy::registered_ = detail::register_message_type<namespace_proxy>();

bool namespace_proxy::has(std::string_view name) const {
  return detail::unpack_value<bool>(ref_.call_one(caf::atom("has"), {key(name)}));
}

bool namespace_proxy::erase(std::string_view name) const {
  return detail::unpack_value<bool>(ref_.call_one(caf::atom("del"), {key(name)}));
}

std::vector<std::string> namespace_proxy::names() const {
  return detail::unpack_values<std::string>(ref_.call(caf::atom("keys"), {}));
}

// As Python's: "name=repr" texts sorted as texts, names starting with _ left out.
std::string namespace_proxy::repr() const {
  std::vector<std::string> shown;
  for (auto& [name, x] : detail::unpack_pairs<std::string, value>(ref_.call(caf::atom("items"), {})))
    if (!name.starts_with('_'))
      shown.push_back(name + "=" + x.repr());
  std::sort(shown.begin(), shown.end());
  std::string out = "Namespace(";
  for (std::size_t i = 0; i < shown.size(); ++i)
    out += (i > 0 ? ", " : "") + shown[i];
  return out + ")";
}

std::ostream& operator<<(std::ostream& os, const namespace_proxy& ns) { return os << ns.repr(); }

} // namespace mproc
