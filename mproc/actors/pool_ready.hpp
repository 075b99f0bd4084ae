// The chunks of a pool's jobs that are encoded and wait for a worker: how far ahead inputs
// are encoded, and what one pull takes (a share of what is ready, within one message). Part
// of the pool's dispatcher, which runs it on its own thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>

#include <caf/fwd.hpp>

#include "mproc/actors/pool_job.hpp"
#include "mproc/actors/pool_pace.hpp"
#include "mproc/actors/queue_batch.hpp"

namespace mproc::detail {

struct chunk_task {
  std::shared_ptr<pool_job> job;
  std::uint32_t index;
  std::uint32_t items;
  bytes payload;
  std::uint32_t attempts = 0;  // deaths of a worker that held it alone
  // Its worker died while holding it with others, so any of them may have killed it: it is
  // handed out alone from now on, and only a death then counts against it.
  bool suspect = false;
};

class ready_chunks {
public:
  // `max_frame`: the largest message a worker takes; a pull's answer stays within it.
  explicit ready_chunks(std::size_t max_frame);

  // Encodes chunks of the `feeding` jobs, dropping each that has no more, while fewer than
  // two per worker are ready or those ready stay under the item and byte limits (a huge map
  // is encoded as it is consumed). A chunk too large for any message fails at once.
  void fill(std::deque<std::shared_ptr<pool_job>>& feeding, std::size_t workers);
  // Guided self-scheduling: a share of what is ready (one chunk if the first is suspect),
  // within the items `pace` allows the first chunk's task, moved to `in_flight` and
  // returned as one batch, within one message of this node's and the worker's `max_frame`.
  // A chunk above the worker's fails (empty batch, if all did).
  item_batch take(std::deque<chunk_task>& in_flight, std::size_t workers,
                  std::uint32_t allowance, std::size_t max_frame, const pool_pace& pace);
  // Back before everything ready (a dead worker's chunk, handed out before them).
  void push_front(chunk_task c);
  // Fails the job of every chunk here, and forgets them.
  void fail_all(const caf::error& why);

  bool empty() const { return list_.empty(); }
  std::size_t size() const { return list_.size(); }

private:
  std::deque<chunk_task> list_;
  std::size_t items_ = 0;
  std::size_t bytes_ = 0;
  std::size_t batch_bytes_;  // the most a pull's chunks may take
};

} // namespace mproc::detail
