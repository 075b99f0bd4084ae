#include "mproc/actors/queue_store.hpp"

#include <algorithm>

namespace mproc::detail {

namespace {

const item_batch& items_of(const caf::message& batch) {
  return batch.get_as<item_batch>(0);
}

} // namespace

void queue_store::put(item_batch&& batch) {
  auto n = batch.size();
  if (n == 0)
    return;
  accepted_ += n;
  count_ += n;
  items_.push_back({caf::make_message(std::move(batch)), 0, n});
}

caf::message queue_store::take(const caf::actor_addr& who, std::uint32_t max) {
  auto n = std::min<std::size_t>(std::max<std::uint32_t>(max, 1), count_);
  auto reply = take_batch(n);
  auto& held = held_[who];
  auto count = items_of(reply).size();
  held.runs.push_back({reply, 0, count, held.handed});
  held.count += count;
  held.handed += count;
  return reply;
}

// How many of the first `n` waiting items (there are as many) fit in one batch of
// max_batch_bytes, at least one, and their bytes.
std::pair<std::size_t, std::size_t> queue_store::fitting(std::size_t n) const {
  std::size_t items = 0;
  std::size_t bytes = 0;
  for (auto i = items_.begin(); items < n && i != items_.end(); ++i) {
    const auto& b = items_of(i->batch);
    for (auto k = i->next; k < i->end && items < n; ++k) {
      auto size = b.bytes_between(k, k + 1);
      if (items > 0 && bytes + size > max_batch_bytes)
        return {items, bytes};
      bytes += size;
      ++items;
    }
  }
  return {items, bytes};
}

// A stored batch of exactly the items taken goes out as it came; others are copied
// together, one copy per stored batch.
caf::message queue_store::take_batch(std::size_t n) {
  auto [count, bytes] = fitting(n);
  count_ -= count;
  taken_ += count;
  auto& front = items_.front();
  if (front.next == 0 && front.end == count && items_of(front.batch).size() == count) {
    auto reply = std::move(front.batch);
    items_.pop_front();
    return reply;
  }
  item_batch out;
  out.reserve(count, bytes);
  for (auto left = count; left > 0;) {
    auto& run = items_.front();
    auto k = std::min(left, run.end - run.next);
    out.append(items_of(run.batch), run.next, run.next + k);
    run.next += k;
    left -= k;
    if (run.next == run.end)
      items_.pop_front();
  }
  return caf::make_message(std::move(out));
}

void queue_store::acknowledge(const caf::actor_addr& who, std::uint64_t done) {
  auto i = held_.find(who);
  if (i == held_.end())
    return;
  auto& held = i->second;
  done = std::min<std::uint64_t>(done, held.count);
  held.count -= done;
  while (done > 0) {
    auto& run = held.runs.front();
    auto k = std::min<std::uint64_t>(done, run.end - run.next);
    run.next += k;
    run.at += k;
    done -= k;
    if (run.next == run.end)
      held.runs.pop_front();
  }
}

// Older than everything still waiting, so in front. The batches are shared, not copied: one
// may still be on its way to the consumer that left, and nobody writes a batch once stored.
std::uint64_t queue_store::give_back(const caf::actor_addr& who) {
  auto i = held_.find(who);
  if (i == held_.end())
    return 0;
  auto& held = i->second;
  for (auto k = held.runs.size(); k-- > 0;)
    items_.push_front({held.runs[k].batch, held.runs[k].next, held.runs[k].end});
  auto back = held.count;
  count_ += back;
  held_.erase(i);
  return back;
}

// Each held run is cut where it meets [from, from + n): the parts inside are returned, the
// parts before and after stay held.
std::vector<queue_store::stored_run> queue_store::cut(const caf::actor_addr& who,
                                                      std::uint64_t from, std::uint64_t n) {
  std::vector<stored_run> out;
  auto i = held_.find(who);
  if (i == held_.end() || n == 0)
    return out;
  auto& held = i->second;
  auto to = from + n;
  std::deque<held_run> kept;
  for (auto& run : held.runs) {
    auto first = run.at;
    auto last = run.at + (run.end - run.next);
    auto lo = std::max(first, from);
    auto hi = std::min(last, to);
    if (lo >= hi) {
      kept.push_back(std::move(run));
      continue;
    }
    if (first < lo)
      kept.push_back({run.batch, run.next, run.next + (lo - first), first});
    out.push_back({run.batch, run.next + (lo - first), run.next + (hi - first)});
    held.count -= hi - lo;
    if (hi < last)
      kept.push_back({run.batch, run.next + (hi - first), run.end, hi});
  }
  held.runs = std::move(kept);
  return out;
}

std::uint64_t queue_store::take_back(const caf::actor_addr& who, std::uint64_t from,
                                     std::uint64_t n) {
  auto back = cut(who, from, n);
  std::uint64_t moved = 0;
  for (auto k = back.size(); k-- > 0;) {
    moved += back[k].end - back[k].next;
    items_.push_front(std::move(back[k]));
  }
  count_ += moved;
  return moved;
}

std::uint64_t queue_store::acknowledge(const caf::actor_addr& who, std::uint64_t from,
                                       std::uint64_t n) {
  std::uint64_t done = 0;
  for (const auto& run : cut(who, from, n))
    done += run.end - run.next;
  return done;
}

std::uint64_t queue_store::held() const {
  std::uint64_t n = 0;
  for (const auto& [who, h] : held_)
    n += h.count;
  return n;
}

std::vector<caf::actor_addr> queue_store::holders() const {
  std::vector<caf::actor_addr> out;
  for (const auto& [who, h] : held_)
    if (h.count != 0)
      out.push_back(who);
  return out;
}

std::uint64_t queue_store::held_by(const caf::actor_addr& who) const {
  auto i = held_.find(who);
  return i == held_.end() ? 0 : i->second.count;
}

} // namespace mproc::detail
