// A bounded busy wait before a thread sleeps for what another process sends it.
//
// On this kind of host (a VM, 2 vCPUs) putting a thread to sleep and waking it costs 10-15 µs
// of a 20-40 µs local round trip, and about as much CPU (50-80 µs, with the VM's exits) as
// the longest spin. So a wait whose answer usually comes within `limit` polls first; one
// whose answers come later (an idle reader, a slow server) sleeps at once. It never spins
// with one CPU to run on: the spin would hold up the very thread that brings the answer.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

namespace mproc {

// Whether this process may run on more than one CPU (its affinity when first asked). A
// process confined later, or by a CPU quota, still stops spinning soon: its answers come
// late, and the gauge says so.
bool more_than_one_cpu() noexcept;

// How long one kind of wait usually takes: an average over the last ~8 waits, so a few slow
// answers stop the spinning and a run of fast ones starts it again.
class spin_gauge {
public:
  static constexpr std::chrono::microseconds limit{100};

  // More than one CPU, and the recent waits ended within the limit.
  bool worth_spinning() const noexcept;
  // How long a wait took, whether the thread spun, slept or found its answer at once.
  void observe(std::chrono::nanoseconds waited) noexcept;

private:
  std::atomic<std::int64_t> typical_ns_{0};
};

// One turn of a busy wait: eases the other hyperthread and the exit from the spin.
inline void spin_pause() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

} // namespace mproc
