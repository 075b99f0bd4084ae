// When a queue asks its consumers to give back what they fetched and did not take
// (docs/queue.md, "recall"): a consumer that finds nothing is hungry until it receives items;
// one that has been hungry for 50 ms makes the queue ask every other holder, once per round,
// rounds twice as far apart each time (up to 800 ms) while anyone stays hungry. No actor
// here: queue_server.cpp runs the one timer and sends what this decides.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <unordered_map>

#include <caf/actor_addr.hpp>

#include "mproc/actors/addr_hash.hpp"

namespace mproc::detail {

class queue_recall {
public:
  using clock = std::chrono::steady_clock;
  using millis = std::chrono::milliseconds;
  static constexpr millis first{50};  // a get that waits this long is not in a flow of items
  static constexpr millis last{800};

  // `who` asked and found nothing. Returns the token of a timer to arm now, `first` ahead
  // (none: one is armed already).
  std::optional<std::uint64_t> hungry(const caf::actor_addr& who, clock::time_point now);
  // `who` received items, left or died.
  void fed(const caf::actor_addr& who);
  bool is_hungry(const caf::actor_addr& who) const { return hungry_.count(who) != 0; }

  struct round {
    bool recall = false;            // ask the holders now
    std::optional<millis> again;    // arm the timer again, this far ahead
    std::uint64_t token = 0;        // ... with this token
  };
  // The timer with `token` fired (a stale or forged token does nothing). `waiting`: whether
  // a consumer has a get waiting; one that only polled is hungry for one round.
  round fire(std::uint64_t token, clock::time_point now,
             const std::function<bool(const caf::actor_addr&)>& waiting);

private:
  std::unordered_map<caf::actor_addr, clock::time_point, addr_hash> hungry_;  // since when
  bool armed_ = false;
  millis interval_ = first;
  std::uint64_t token_ = 0;
};

} // namespace mproc::detail
