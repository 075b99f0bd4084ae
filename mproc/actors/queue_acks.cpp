#include "mproc/actors/queue_acks.hpp"

#include <algorithm>
#include <functional>
#include <thread>

namespace mproc::detail {

queue_acks::thread_key queue_acks::this_thread() {
  return std::hash<std::thread::id>{}(std::this_thread::get_id());
}

bool queue_acks::finish(thread_key t) {
  auto i = open_.find(t);
  if (i == open_.end())
    return false;
  add_finished(i->second);
  open_.erase(i);
  return true;
}

void queue_acks::untake(thread_key t, std::uint64_t n) {
  auto i = open_.find(t);
  if (i == open_.end())
    return;
  i->second.n -= std::min(n, i->second.n);
  if (i->second.n == 0)
    open_.erase(i);
}

void queue_acks::add_finished(item_span s) {
  if (s.n == 0)
    return;
  auto at = std::lower_bound(finished_.begin(), finished_.end(), s.first,
                             [](const item_span& a, std::uint64_t first) { return a.first < first; });
  at = finished_.insert(at, s);
  // Merged with its neighbours where they touch: a single thread's acknowledgment stays one
  // span however many gets it covers.
  if (auto next = at + 1; next != finished_.end() && at->first + at->n == next->first) {
    at->n += next->n;
    finished_.erase(next);
  }
  if (at != finished_.begin()) {
    auto prev = at - 1;
    if (prev->first + prev->n == at->first) {
      prev->n += at->n;
      finished_.erase(at);
    }
  }
}

void queue_acks::append(spans& out, item_span s) {
  if (s.n == 0)
    return;
  out.push_back(s.first);
  out.push_back(s.n);
}

queue_acks::spans queue_acks::claim_finished() {
  spans out;
  for (auto s : finished_)
    append(out, s);
  finished_.clear();
  return out;
}

queue_acks::spans queue_acks::claim_tasks(thread_key t, std::uint64_t n) {
  spans out;
  if (auto i = open_.find(t); i != open_.end()) {
    auto k = std::min(n, i->second.n);
    append(out, {i->second.first, k});
    i->second.first += k;
    i->second.n -= k;
    n -= k;
    if (i->second.n == 0)
      open_.erase(i);
  }
  while (n > 0 && !finished_.empty()) {
    auto& oldest = finished_.front();
    auto k = std::min(n, oldest.n);
    append(out, {oldest.first, k});
    oldest.first += k;
    oldest.n -= k;
    n -= k;
    if (oldest.n == 0)
      finished_.erase(finished_.begin());
  }
  return out;
}

queue_acks::spans queue_acks::claim_all() {
  for (auto& [t, s] : open_)
    add_finished(s);
  open_.clear();
  return claim_finished();
}

void queue_acks::clear() {
  finished_.clear();
  open_.clear();
}

} // namespace mproc::detail
