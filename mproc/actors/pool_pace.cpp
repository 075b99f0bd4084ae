#include "mproc/actors/pool_pace.hpp"

#include <algorithm>

namespace mproc::detail {

std::size_t pool_pace::items_for(const std::string& task) const {
  auto it = ns_per_item_.find(task);
  if (it == ns_per_item_.end())
    return 0;
  auto budget = std::chrono::duration<double, std::nano>(batch_budget).count();
  return static_cast<std::size_t>(std::max(1.0, budget / std::max(it->second, 1.0)));
}

void pool_pace::measured(const std::string& task, std::size_t items,
                         std::chrono::nanoseconds elapsed) {
  if (items == 0)
    return;
  // The last batch only: a task whose pace changes is followed at the next pull.
  ns_per_item_[task] = static_cast<double>(elapsed.count()) / static_cast<double>(items);
}

} // namespace mproc::detail
