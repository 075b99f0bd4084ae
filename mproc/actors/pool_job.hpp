// A pool job: one per map/apply call, what the dispatcher settles chunk by chunk and the
// caller's thread reads its results from (pool.hpp declares the functions on it).
#pragma once

#include <condition_variable>
#include <cstddef>
#include <cstdlib>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include <caf/error.hpp>

#include "mproc/actors/pool.hpp"
#include "mproc/actors/queue_batch.hpp"

namespace mproc::detail {

struct pool_job {
  explicit pool_job(std::size_t chunks);

  std::string task;
  std::size_t chunks = 0;
  std::size_t fed = 0;  // dispatcher thread only

  void set_source(chunk_source next);
  // The next chunk to send; nothing once all were, or once the source was dropped.
  // Dispatcher thread only.
  std::optional<std::pair<bytes, std::uint32_t>> feed();
  // Releases the source (and the inputs it holds or borrows): once this returns, it is not
  // called again. Any thread.
  void drop_source();

  std::mutex m;
  std::condition_variable cv;
  std::deque<std::size_t> finished;  // not yet taken by next_finished
  std::size_t done = 0;
  caf::error failure;                // the job as a whole
  std::vector<std::function<void()>> on_done;

  bool complete_locked() const { return done == chunks || failure; }

  // Chunks that ran, each with where its worker's answer lies in `results`: settled under
  // one lock and announced with one wake-up (a pull brings up to 4,096 chunks of one job).
  struct ran_chunk {
    std::size_t index;
    std::uint32_t items;
    std::uint32_t at;  // results[at]
  };
  void settle(std::shared_ptr<const item_batch> results, std::vector<ran_chunk>&& ran);
  // Chunk `index` never finished: every item fails with `why`.
  void settle_failed(std::size_t index, std::uint32_t items, std::string why);
  void fail(caf::error why);

  // Chunk `index` as settled, or nothing yet. With the lock held.
  std::optional<settled_chunk> settled_locked(std::size_t index) const;
  // Chunk `index`'s results were decoded: its batch is freed once every chunk of this job
  // in it was. With the lock held.
  void release_locked(std::size_t index);

private:
  std::mutex source_m_;  // a blocking map's caller drops the source it lent while feed runs
  chunk_source source_;

  // A batch of workers' answers, as long as a chunk of this job in it was not released.
  struct held_batch {
    std::shared_ptr<const item_batch> results;
    std::size_t unreleased = 0;
  };
  static constexpr std::uint32_t released = ~std::uint32_t{0};
  struct slot {
    held_batch* from;  // null until settled; &no_results_ when its workers kept dying
    std::uint32_t at;  // its answer in from->results; `released` once decoded
    std::uint32_t items;
  };
  struct free_slots {
    void operator()(slot* p) const { std::free(p); }
  };

  // Set once under the lock, then read by whoever saw them set. calloc'd: a map of a
  // million chunks does not fault in its slots before it starts, the dispatcher does as
  // results come (a vector of the results themselves zeroed 72 MB first: 300 ms here).
  std::unique_ptr<slot[], free_slots> slots_;
  // What workers sent, as it came; a deque, so the slots' pointers stay valid as it grows.
  std::deque<held_batch> batches_;
  std::unordered_map<std::size_t, std::string> failures_;  // why, for those slots
  held_batch no_results_;

  // After `n` slots were set: the rest of settling, then announce().
  void finish_settling(std::size_t n, std::unique_lock<std::mutex> lock);
  // Wakes the waiting callers, the lock released first, and runs the on_done callbacks if
  // the job is complete.
  void announce(std::unique_lock<std::mutex> lock);
};

} // namespace mproc::detail
