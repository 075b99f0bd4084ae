// Who may start a handshake on a listener (listener.cpp asks), so that no single address can
// keep others out, and the log of refusals. A host with max_pending / max_pending_per_source
// addresses (8 IPv4 addresses, or an IPv6 /61, which an ordinary /56 holds) can still fill
// the global cap by renewing its connections (docs/distributed.md, "Threat model"); a
// firewall's limit per network is the answer to that.
//
// - At most max_pending handshakes at once in all, and max_pending_per_source from one
//   address: filling the global cap takes max_pending / max_pending_per_source addresses.
// - A wrong key makes its address wait before its next try: first_backoff, doubled with each
//   wrong key in a row up to max_backoff; a proven key clears it. Connections that arrive
//   while it waits are refused at once, before anything is sent to them.
// - Each refusal is logged with its address and reason, at most once a second per address
//   and reason, with the count of those not logged since, and max_lines_per_second lines in
//   all.
// An address is an IPv4 address, or an IPv6 /64 (one host may hold a whole /64).
// Loop thread only.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>

#include "mproc/runtime/internal/io_loop.hpp"

namespace mproc::detail {

class admission {
public:
  using clock = io_loop::clock;
  static constexpr std::size_t max_pending = 64;
  static constexpr std::size_t max_pending_per_source = 8;
  static constexpr std::chrono::milliseconds first_backoff{100};
  static constexpr std::chrono::milliseconds max_backoff{30'000};
  static constexpr std::size_t max_lines_per_second = 20;

  // Nothing when a handshake from `host` may start now (it then counts as pending until
  // done()); else the reason to refuse it.
  std::optional<std::string> admit(const std::string& host, clock::time_point now);
  // A handshake admitted from `host` ended: with the key proven, with a wrong key, or
  // otherwise (timeout, garbage, closed).
  enum class outcome { proven, wrong_key, other };
  void done(const std::string& host, outcome how, clock::time_point now);

  // Logs the refusal of a connection from `from` (host:port) of `host`, where `listening`.
  void log_refusal(const std::string& from, const std::string& host, const std::string& why,
                   const std::string& listening, clock::time_point now);

  std::size_t pending() const { return pending_; }

private:
  struct source {
    std::size_t pending = 0;
    std::uint32_t wrong_keys = 0;  // in a row
    clock::time_point wait_until{};
  };
  struct log_slot {
    std::uint64_t unlogged = 0;
    clock::time_point last{};
  };
  // Forgets sources with nothing pending and no wait left, and log slots quiet for a second
  // (logging what they counted), once the tables have doubled since the last sweep.
  void sweep_if_grown(clock::time_point now);
  // One more log line this second, within max_lines_per_second.
  bool take_line(clock::time_point now);

  static constexpr std::size_t min_sweep_at = 1024;
  std::size_t pending_ = 0;
  std::unordered_map<std::string, source> sources_;
  std::unordered_map<std::string, log_slot> logged_;  // by address and reason
  std::size_t sweep_at_ = min_sweep_at;
  clock::time_point second_start_{};
  std::size_t lines_ = 0;
  std::uint64_t lines_dropped_ = 0;
};

} // namespace mproc::detail
