// What a queue holds: the items waiting, in the batches they came in, and what each consumer
// was handed and has not acknowledged yet. No actor here: queue_server.cpp decides who
// waits and who is answered; this says what there is.
//
// Each batch put is moved (not copied) into a message of its own, and handed out as a
// message: CAF messages are reference-counted and copied only when written, so an item costs
// no allocation of its own here, and what a consumer holds is shared with the reply that
// carried it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <unordered_map>
#include <utility>
#include <vector>

#include <caf/actor_addr.hpp>
#include <caf/message.hpp>

#include "mproc/actors/addr_hash.hpp"
#include "mproc/actors/queue_batch.hpp"

namespace mproc::detail {

class queue_store {
public:
  explicit queue_store(std::size_t maxsize) : maxsize_(maxsize) {}

  std::size_t size() const { return count_; }  // items waiting
  std::size_t maxsize() const { return maxsize_; }  // 0: unbounded
  // Whether `n` more items fit. A batch never exceeds maxsize (the client caps it), so it
  // fits once enough is taken.
  bool has_room(std::size_t n) const {
    return maxsize_ == 0 || count_ + n <= maxsize_ || count_ == 0;
  }

  // Appends `batch`'s items behind those waiting.
  void put(item_batch&& batch);
  // Up to `max` waiting items (at least one; one is there) as one batch message, held for
  // `who` until it acknowledges them.
  caf::message take(const caf::actor_addr& who, std::uint32_t max);

  // `who` is a consumer from now on (it holds nothing yet).
  void add_consumer(const caf::actor_addr& who) { held_.try_emplace(who); }
  // `done` items of `who`'s oldest held ones are finished.
  void acknowledge(const caf::actor_addr& who, std::uint64_t done);
  // What `who` holds goes back in front of everything waiting, and `who` is a consumer no
  // more; returns how many items went back.
  std::uint64_t give_back(const caf::actor_addr& who);
  // Items `from` .. `from + n` of those handed to `who` (counted from 0, in the order they
  // were handed out), those of them it still holds, go back in front of everything waiting:
  // a consumer returns what it fetched and did not take. Returns how many went back.
  std::uint64_t take_back(const caf::actor_addr& who, std::uint64_t from, std::uint64_t n);
  // The same items, those of them `who` still holds, are finished. Returns how many.
  std::uint64_t acknowledge(const caf::actor_addr& who, std::uint64_t from, std::uint64_t n);

  std::uint64_t held() const;  // items handed out and not acknowledged, all consumers
  std::uint64_t held_by(const caf::actor_addr& who) const;  // ... by `who`
  std::size_t consumers() const { return held_.size(); }
  // The consumers that hold items.
  std::vector<caf::actor_addr> holders() const;
  std::uint64_t accepted() const { return accepted_; }  // items ever put
  std::uint64_t taken() const { return taken_; }  // items ever handed out (given back: again)

private:
  // Items [next, end) of a batch message (one item_batch).
  struct stored_run {
    caf::message batch;
    std::size_t next;
    std::size_t end;
  };
  // Items [next, end) of a batch handed to a consumer; `at` counts, over everything handed
  // to that consumer, the item `next` (what it gives back is named by these counts).
  struct held_run {
    caf::message batch;
    std::size_t next;
    std::size_t end;
    std::uint64_t at;
  };
  // What a consumer was handed, oldest first: the batches as they were sent, less what it
  // acknowledged (from the front) and what it gave back.
  struct held_items {
    std::deque<held_run> runs;
    std::size_t count = 0;     // items held in all
    std::uint64_t handed = 0;  // items ever handed to it
  };

  std::pair<std::size_t, std::size_t> fitting(std::size_t n) const;
  std::vector<stored_run> cut(const caf::actor_addr& who, std::uint64_t from, std::uint64_t n);
  caf::message take_batch(std::size_t n);

  std::size_t maxsize_;
  std::deque<stored_run> items_;
  std::size_t count_ = 0;  // the runs' items: kept so that has_room and take need not walk them
  std::unordered_map<caf::actor_addr, held_items, addr_hash> held_;
  std::uint64_t accepted_ = 0;
  std::uint64_t taken_ = 0;
};

} // namespace mproc::detail
