#include "mproc/actors/manager_deadlines.hpp"

#include <algorithm>

namespace mproc::detail {

namespace {

// std::*_heap keep the largest first: "later" orders the earliest first.
bool later(const manager_deadlines::entry& a, const manager_deadlines::entry& b) {
  return a.due > b.due;
}

} // namespace

std::optional<manager_deadlines::clock::time_point>
manager_deadlines::add(entry e, const still_waiting& waiting) {
  if (heap_.size() >= clean_at_)
    clean(waiting);
  heap_.push_back(e);
  std::push_heap(heap_.begin(), heap_.end(), later);
  if (timer_ && *timer_ <= e.due)
    return std::nullopt;  // the timer on its way comes first, and re-arms for this one
  timer_ = e.due;
  return e.due;
}

std::vector<manager_deadlines::entry> manager_deadlines::due_by(clock::time_point due,
                                                                 clock::time_point now) {
  if (timer_ && *timer_ == due)
    timer_.reset();  // (an earlier timer that was overtaken leaves timer_ alone)
  std::vector<entry> out;
  while (!heap_.empty() && heap_.front().due <= now) {
    std::pop_heap(heap_.begin(), heap_.end(), later);
    out.push_back(heap_.back());
    heap_.pop_back();
  }
  return out;
}

std::optional<manager_deadlines::clock::time_point> manager_deadlines::next_timer() {
  if (heap_.empty() || (timer_ && *timer_ <= heap_.front().due))
    return std::nullopt;
  timer_ = heap_.front().due;
  return timer_;
}

void manager_deadlines::clean(const still_waiting& waiting) {
  std::erase_if(heap_, [&](const entry& e) { return !waiting(e); });
  std::make_heap(heap_.begin(), heap_.end(), later);
  clean_at_ = std::max(min_clean, 2 * heap_.size());
}

} // namespace mproc::detail
