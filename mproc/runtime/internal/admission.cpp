#include "mproc/runtime/internal/admission.hpp"

#include <algorithm>

#include "mproc/runtime/log.hpp"

namespace mproc::detail {

namespace {

constexpr std::size_t sweep_above = 1024;  // table entries before a sweep

} // namespace

std::optional<std::string> admission::admit(const std::string& host, clock::time_point now) {
  if (sources_.size() > sweep_above || logged_.size() > sweep_above)
    sweep(now);
  auto& s = sources_[host];
  if (now < s.wait_until)
    return "waiting after " + std::to_string(s.wrong_keys) + " wrong key(s) from this address";
  if (s.pending >= max_pending_per_source)
    return "too many handshakes in progress from this address";
  if (pending_ >= max_pending)
    return "too many handshakes in progress";
  ++s.pending;
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
    auto wait = std::min(max_backoff, first_backoff * (std::int64_t{1} << shift));
    s.wait_until = now + wait;
  }
  if (s.pending == 0 && s.wrong_keys == 0)
    sources_.erase(i);
}

void admission::log_refusal(const std::string& from, const std::string& host,
                            const std::string& why, const std::string& listening,
                            clock::time_point now) {
  auto& slot = logged_[host + '\n' + why];
  if (slot.last != clock::time_point{} && now - slot.last < std::chrono::seconds{1}) {
    ++slot.unlogged;  // a flood must not flood the log too
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

void admission::sweep(clock::time_point now) {
  std::erase_if(sources_, [&](const auto& e) {
    return e.second.pending == 0 && e.second.wait_until + max_backoff < now;
  });
  std::erase_if(logged_, [&](const auto& e) {
    return e.second.unlogged == 0 && now - e.second.last > std::chrono::seconds{10};
  });
}

} // namespace mproc::detail
