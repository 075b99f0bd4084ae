#include "mproc/actors/queue_acks.hpp"

#include <algorithm>
#include <functional>
#include <thread>

namespace mproc::detail {

queue_acks::thread_key queue_acks::this_thread() {
  thread_local const thread_key key = std::hash<std::thread::id>{}(std::this_thread::get_id());
  return key;
}

item_span* queue_acks::find_open(thread_key t) {
  for (auto& [key, span] : open_)
    if (key == t)
      return &span;
  return nullptr;
}

item_span& queue_acks::open_of(thread_key t) {
  if (auto* span = find_open(t))
    return *span;
  return open_.emplace_back(t, item_span{}).second;
}

bool queue_acks::any() const {
  return !finished_.empty()
         || std::any_of(open_.begin(), open_.end(), [](const auto& o) { return o.second.n != 0; });
}

bool queue_acks::finish(thread_key t) {
  auto* span = find_open(t);
  if (!span || span->n == 0)
    return false;
  add_finished(std::exchange(*span, {}));
  return true;
}

void queue_acks::untake(thread_key t, std::uint64_t n) {
  if (auto* span = find_open(t))
    span->n -= std::min(n, span->n);
}

void queue_acks::add_finished(item_span s) {
  if (s.n == 0)
    return;
  // A thread's items come in order: most often they continue the newest span.
  if (!finished_.empty() && finished_.back().first + finished_.back().n == s.first) {
    finished_.back().n += s.n;
    return;
  }
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
  if (auto* span = find_open(t)) {
    auto k = std::min(n, span->n);
    append(out, {span->first, k});
    span->first += k;
    span->n -= k;
    n -= k;
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
    add_finished(s);  // (a thread's is empty once finished)
  open_.clear();
  return claim_finished();
}

void queue_acks::clear() {
  finished_.clear();
  open_.clear();
}

} // namespace mproc::detail
