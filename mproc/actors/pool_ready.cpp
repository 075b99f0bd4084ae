#include "mproc/actors/pool_ready.hpp"

#include <algorithm>
#include <optional>
#include <string>
#include <utility>

#include "mproc/runtime/errors.hpp"

namespace mproc::detail {

namespace {

// Ready chunks are kept to this many items and bytes (but at least 2 per worker).
constexpr std::size_t ready_item_limit = 32 * 1024;
constexpr std::size_t ready_byte_limit = std::size_t{64} << 20;
// A pull takes at most this many items: the rest stays for other workers.
constexpr std::size_t batch_item_limit = 4 * 1024;
// What a pull's answer carries beside its chunks, at most (the envelope, each chunk's bin
// header).
constexpr std::size_t batch_envelope_room = 64 * 1024;

std::string too_large(std::uint32_t items, std::size_t size, std::size_t max_frame) {
  return "its chunk of " + std::to_string(items) + " item(s) takes " + std::to_string(size)
         + " bytes, more than a message carries (max_frame " + std::to_string(max_frame)
         + "): pass a smaller chunksize";
}

} // namespace

ready_chunks::ready_chunks(std::size_t max_frame)
  : batch_bytes_(max_frame - batch_envelope_room) {}

void ready_chunks::fill(std::deque<std::shared_ptr<pool_job>>& feeding, std::size_t workers) {
  auto min_ready = 2 * std::max<std::size_t>(workers, 1);
  while (!feeding.empty()
         && (list_.size() < min_ready
             || (items_ < ready_item_limit && bytes_ < ready_byte_limit))) {
    auto& job = feeding.front();
    std::optional<std::pair<bytes, std::uint32_t>> chunk;
    try {
      chunk = job->feed();
    } catch (...) {  // the caller's container or an item's encoder threw
      job->fail(make_error(errc::task_failed,
                           "the inputs could not be encoded: " + describe_current_exception()));
    }
    if (!chunk) {
      job->drop_source();  // releases the inputs
      feeding.pop_front();
      continue;
    }
    auto index = static_cast<std::uint32_t>(job->fed++);
    auto& [payload, items] = *chunk;
    if (payload.size() > batch_bytes_) {  // it could never reach a worker
      job->settle_failed(index, items,
                         too_large(items, payload.size(), batch_bytes_ + batch_envelope_room));
      continue;
    }
    items_ += items;
    bytes_ += payload.size();
    list_.push_back({job, index, items, std::move(payload)});
  }
}

item_batch ready_chunks::take(std::deque<chunk_task>& in_flight, std::size_t workers,
                              std::uint32_t allowance, std::size_t max_frame,
                              const pool_pace& pace) {
  // The worker's limit, when its options differ from this node's (mproc::init's).
  auto room = std::min(batch_bytes_, max_frame - std::min(max_frame, batch_envelope_room));
  while (!list_.empty() && list_.front().payload.size() > room) {
    auto c = std::move(list_.front());
    list_.pop_front();
    items_ -= c.items;
    bytes_ -= c.payload.size();
    c.job->settle_failed(c.index, c.items, too_large(c.items, c.payload.size(), max_frame));
  }
  workers = std::max<std::size_t>(workers, 1);
  auto share = std::max<std::size_t>(1, (list_.size() + 2 * workers - 1) / (2 * workers));
  share = std::min<std::size_t>(share, allowance);
  if (!list_.empty() && list_.front().suspect)
    share = 1;
  // One task per batch, as much of it as its pace allows: 0 (not measured yet), its first
  // chunk alone. (Another task's chunks behind it could be long ones.)
  const std::string* task = list_.empty() ? nullptr : &list_.front().job->task;
  auto paced = task ? pace.items_for(*task) : 0;
  item_batch batch;
  std::size_t items = 0;
  auto fits = [&](const chunk_task& next) {
    return batch.empty()
           || (next.job->task == *task && items + next.items <= std::min(batch_item_limit, paced)
               && batch.byte_size() + next.payload.size() <= room);
  };
  while (!list_.empty() && batch.size() < share && fits(list_.front())) {
    // Copied (the payload stays for a retry) before it leaves the list: if that throws, no
    // chunk is lost between the two lists.
    const auto& payload = list_.front().payload;
    batch.append({payload.data(), payload.size()});
    auto c = std::move(list_.front());
    list_.pop_front();
    items_ -= c.items;
    bytes_ -= c.payload.size();
    items += c.items;
    in_flight.push_back(std::move(c));
  }
  return batch;
}

void ready_chunks::push_front(chunk_task c) {
  items_ += c.items;
  bytes_ += c.payload.size();
  list_.push_front(std::move(c));
}

void ready_chunks::fail_all(const caf::error& why) {
  for (auto& c : list_)
    c.job->fail(why);
  list_.clear();
  items_ = 0;
  bytes_ = 0;
}

} // namespace mproc::detail
