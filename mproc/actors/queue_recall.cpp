#include "mproc/actors/queue_recall.hpp"

#include <algorithm>

namespace mproc::detail {

std::optional<std::uint64_t> queue_recall::hungry(const caf::actor_addr& who,
                                                  clock::time_point now) {
  hungry_.try_emplace(who, now);
  if (armed_)
    return std::nullopt;
  armed_ = true;
  return ++token_;
}

void queue_recall::fed(const caf::actor_addr& who) {
  hungry_.erase(who);
  if (hungry_.empty())
    interval_ = first;  // the next hunger starts a new series of rounds
}

queue_recall::round queue_recall::fire(std::uint64_t token, clock::time_point now,
                                       const std::function<bool(const caf::actor_addr&)>& waiting) {
  round r;
  if (!armed_ || token != token_)
    return r;
  armed_ = false;
  auto earliest = now;
  for (const auto& [who, since] : hungry_)
    earliest = std::min(earliest, since);
  r.recall = !hungry_.empty() && now - earliest >= first;
  if (r.recall) {
    std::erase_if(hungry_, [&](const auto& h) { return !waiting(h.first); });
    r.again = interval_ = std::min(2 * interval_, last);
  } else if (!hungry_.empty()) {
    r.again = std::max(millis{1}, std::chrono::ceil<millis>(earliest + first - now));
  }
  if (hungry_.empty()) {
    interval_ = first;
    r.again.reset();
  }
  if (r.again) {
    armed_ = true;
    r.token = ++token_;
  }
  return r;
}

} // namespace mproc::detail
