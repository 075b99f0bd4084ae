#include "mproc/actors/queue_acks.hpp"

#include <algorithm>
#include <atomic>
#include <utility>

namespace mproc::detail {

namespace {

// Entries with nothing taken and unacknowledged are dropped once there are this many; past
// four times as many, also those holding only a count of unreported items (threads that
// ended, in a process that starts many: a live thread's count dropped makes its next
// task_done() report its next item instead).
constexpr std::size_t idle_threads_kept = 256;

} // namespace

// A counter, not the thread's id: ids of ended threads are reused, and a new thread must
// not finish what an ended one had taken.
queue_acks::thread_key queue_acks::this_thread() {
  static std::atomic<thread_key> last{0};
  thread_local const thread_key key = ++last;
  return key;
}

queue_acks::thread_items* queue_acks::find(thread_key t) {
  for (auto& items : threads_)
    if (items.key == t)
      return &items;
  return nullptr;
}

queue_acks::thread_items& queue_acks::of(thread_key t) {
  if (auto* items = find(t))
    return *items;
  forget_idle();
  auto& items = threads_.emplace_back();
  items.key = t;
  return items;
}

void queue_acks::forget_idle() {
  if (threads_.size() < idle_threads_kept)
    return;
  auto idle = [](const thread_items& i) { return i.open.n == 0 && i.finished.empty(); };
  std::erase_if(threads_, [&](const thread_items& i) { return idle(i) && i.unreported == 0; });
  if (threads_.size() >= 4 * idle_threads_kept)
    std::erase_if(threads_, idle);
}

bool queue_acks::finish(thread_key t) {
  auto* items = find(t);
  if (!items || items->open.n == 0)
    return false;
  auto s = std::exchange(items->open, {});
  auto& f = items->finished;
  if (!f.empty() && f.back().first + f.back().n == s.first)
    f.back().n += s.n;  // a thread's gets follow each other: one span for all of them
  else
    f.push_back(s);
  return true;
}

void queue_acks::took(thread_key t, item_span s) {
  of(t).open = s;
}

void queue_acks::untake(thread_key t, std::uint64_t n) {
  if (auto* items = find(t))
    items->open.n -= std::min(n, items->open.n);
}

bool queue_acks::any() const {
  return std::any_of(threads_.begin(), threads_.end(), [](const thread_items& i) {
    return i.open.n != 0 || !i.finished.empty() || i.unreported != 0;
  });
}

bool queue_acks::any_finished() const {
  return std::any_of(threads_.begin(), threads_.end(),
                     [](const thread_items& i) { return !i.finished.empty(); });
}

void queue_acks::append(spans& out, item_span s) {
  if (s.n == 0)
    return;
  out.push_back(s.first);
  out.push_back(s.n);
}

// Up to `n` items from the front of `s` into `out`; returns how many.
std::uint64_t queue_acks::claim_front(item_span& s, std::uint64_t n, spans& out) {
  auto k = std::min(n, s.n);
  append(out, {s.first, k});
  s.first += k;
  s.n -= k;
  return k;
}

// The same from the oldest spans of `from` on.
std::uint64_t queue_acks::claim_from(std::vector<item_span>& from, std::uint64_t n,
                                     spans& out) {
  std::uint64_t claimed = 0;
  while (claimed < n && !from.empty()) {
    claimed += claim_front(from.front(), n - claimed, out);
    if (from.front().n == 0)
      from.erase(from.begin());
  }
  return claimed;
}

// `items`' finished spans into `out`: acknowledged now, still to be reported.
void queue_acks::acknowledge(thread_items& items, spans& out) {
  for (auto s : items.finished) {
    append(out, s);
    items.unreported += s.n;
  }
  items.finished.clear();
}

queue_acks::spans queue_acks::claim_finished() {
  spans out;
  for (auto& items : threads_)
    acknowledge(items, out);
  return out;
}

queue_acks::spans queue_acks::claim_tasks(thread_key t, std::uint64_t n) {
  spans out;
  if (auto* items = find(t)) {
    auto k = std::min(n, items->unreported);
    items->unreported -= k;
    n -= k;
    n -= claim_from(items->finished, n, out);
    n -= claim_front(items->open, n, out);
  }
  for (auto& other : threads_)
    if (n > 0 && other.key != t)
      n -= claim_from(other.finished, n, out);
  return out;
}

// What each thread took stays to be reported: its task_done()s after the leave must not
// report items it takes later, through the next agent.
queue_acks::spans queue_acks::claim_all() {
  spans out;
  for (auto& items : threads_) {
    acknowledge(items, out);
    append(out, items.open);
    items.unreported += std::exchange(items.open, {}).n;
  }
  return out;
}

} // namespace mproc::detail
