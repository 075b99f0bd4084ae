#include "mproc/runtime/internal/admission.hpp"

#include <algorithm>

#include "mproc/runtime/log.hpp"

namespace mproc::detail {

std::optional<std::string> admission::admit(const std::string& host, clock::time_point now) {
  sweep_if_grown(now);
  auto i = sources_.find(host);  // refusals add no entry: a scan must not grow the table
  if (i != sources_.end()) {
    if (now < i->second.wait_until)
      return "waiting after " + std::to_string(i->second.wrong_keys)
             + " wrong key(s) from this address";
    if (i->second.pending >= max_pending_per_source)
      return "too many handshakes in progress from this address";
  }
  if (pending_ >= max_pending)
    return "too many handshakes in progress";
  ++sources_[host].pending;
  ++pending_;
  return std::nullopt;
}

void admission::done(const std::string& host, outcome how, clock::time_point now) {
  auto i = sources_.find(host);
  if (i == sources_.end())
    return;
  auto& s = i->second;
  if (s.pending > 0) {
    --s.pending;
    --pending_;
  }
  if (how == outcome::proven) {
    s.wrong_keys = 0;
    s.wait_until = {};
  } else if (how == outcome::wrong_key) {
    ++s.wrong_keys;
    auto shift = std::min<std::uint32_t>(s.wrong_keys - 1, 20);
    s.wait_until = now + std::min(max_backoff, first_backoff * (std::int64_t{1} << shift));
  }
  if (s.pending == 0 && s.wrong_keys == 0)
    sources_.erase(i);
}

void admission::log_refusal(const std::string& from, const std::string& host,
                            const std::string& why, const std::string& listening,
                            clock::time_point now) {
  auto& slot = logged_[host + '\n' + why];
  // At most once a second per address and reason, and max_lines_per_second in all: many
  // addresses must not flood the log either.
  if (now - slot.last < std::chrono::seconds{1} || !take_line(now)) {
    ++slot.unlogged;
    return;
  }
  log::warn("refused a connection from ", from, " on ", listening, ": ", why,
            slot.unlogged > 0
              ? " (and " + std::to_string(slot.unlogged) + " more from " + host
                  + " for this reason since the last report)"
              : std::string{});
  slot.unlogged = 0;
  slot.last = now;
}

bool admission::take_line(clock::time_point now) {
  if (now - second_start_ >= std::chrono::seconds{1}) {
    if (lines_dropped_ > 0)
      log::warn("refused connections: ", lines_dropped_,
                " report(s) left out in the last second (too many addresses)");
    second_start_ = now;
    lines_ = 0;
    lines_dropped_ = 0;
  }
  if (lines_ >= max_lines_per_second) {
    ++lines_dropped_;
    return false;
  }
  ++lines_;
  return true;
}

void admission::sweep_if_grown(clock::time_point now) {
  if (sources_.size() + logged_.size() < sweep_at_)
    return;
  std::erase_if(sources_, [&](const auto& e) {
    return e.second.pending == 0 && e.second.wait_until + max_backoff < now;
  });
  // A slot quiet for a second says what it left unsaid, then goes.
  std::erase_if(logged_, [&](const auto& e) {
    if (now - e.second.last < std::chrono::seconds{1})
      return false;
    if (e.second.unlogged > 0 && take_line(now))
      log::warn("refused ", e.second.unlogged, " more connection(s) from ",
                e.first.substr(0, e.first.find('\n')), ": ", e.first.substr(e.first.find('\n') + 1));
    return true;
  });
  // Amortised: the next sweep when the tables have doubled.
  sweep_at_ = std::max(min_sweep_at, 2 * (sources_.size() + logged_.size()));
}

} // namespace mproc::detail
