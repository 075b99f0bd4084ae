// Restart intensity as OTP keeps it: the times of recent restarts, on a monotonic clock.
#pragma once

#include <chrono>
#include <deque>

namespace mproc::detail {

class restart_window {
public:
  using clock = std::chrono::steady_clock;

  restart_window(int intensity, std::chrono::milliseconds period)
    : intensity_(intensity), period_(period) {}

  // Records a restart at `now`. False when that makes more than `intensity` restarts within
  // the last `period`: the supervisor must give up.
  bool allow(clock::time_point now) {
    times_.push_back(now);
    while (!times_.empty() && now - times_.front() > period_)
      times_.pop_front();
    return static_cast<int>(times_.size()) <= intensity_;
  }

  // Restarts counted in the current window.
  int recent() const { return static_cast<int>(times_.size()); }

private:
  int intensity_;
  std::chrono::milliseconds period_;
  std::deque<clock::time_point> times_;
};

} // namespace mproc::detail
