// A bounded busy wait before a thread sleeps for what another process sends it.
//
// On this kind of host (a VM, 2 vCPUs) putting a thread to sleep and waking it costs 10-15 µs
// of a 20-40 µs local round trip, and about as much CPU (50-80 µs, with the VM's exits) as
// the longest spin. So a wait whose answers have lately come within `limit` polls first; one
// whose answers come later (an idle reader, a slow server) sleeps at once. It never spins
// with one CPU to run on: the spin would hold up the very thread that brings the answer.
// Used by the runtime's blocking requests and the Pipe's reads. The I/O loop's readers of
// shared memory take turns the other way: only with one CPU, yielding it (io_loop.hpp).
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>

namespace mproc::detail {

// Whether this process may run on more than one CPU (its affinity when first asked). A
// process confined later, or by a CPU quota, still stops spinning soon: its answers come
// late, and the gauge says so.
bool more_than_one_cpu() noexcept;

// Whether one kind of wait has lately been short: each of the last `streak` waits ended
// within `limit`. One longer wait stops the spinning until a new streak of fast ones: where
// more threads wait than there are CPUs (four processes calling one manager on two vCPUs),
// waits hover around the limit, and an average of them kept every waiter spinning on CPU
// time the answering threads needed (docs/architecture.md, "Blocking requests").
class spin_gauge {
public:
  static constexpr std::chrono::microseconds limit{100};
  static constexpr std::int32_t streak = 32;

  // More than one CPU, and fast_lately().
  bool worth_spinning() const noexcept;
  // The last `streak` waits ended within the limit (or none was seen yet).
  bool fast_lately() const noexcept;
  // How long a wait took until its answer, whether the thread spun, slept or found it at once.
  void observe(std::chrono::nanoseconds waited) noexcept;
  // A wait that ended without its answer: slow if it lasted past the limit; one that gave up
  // sooner (a short timeout, a poll that does not wait) says nothing about how fast answers
  // come.
  void timed_out(std::chrono::nanoseconds waited) noexcept;

private:
  std::atomic<std::int32_t> fast_{streak};  // waits within the limit in a row (may pass streak)
};

// One turn of a busy wait: eases the other hyperthread and the exit from the spin.
inline void spin_pause() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

// One turn of a wait for what another process on this CPU brings: it runs meanwhile.
void yield_cpu() noexcept;

// Asks `ready` until it says yes (true), or until spin_gauge::limit or `deadline` passes
// (false), reading the clock every `clock_every` turns: often for a check that is a system
// call, seldom for one that reads a word. `pause` between turns.
template <class Ready, class Pause = void (*)() noexcept>
bool spin_until(Ready&& ready, std::chrono::steady_clock::time_point deadline,
                unsigned clock_every, Pause pause = spin_pause) {
  auto until = std::min(deadline, std::chrono::steady_clock::now() + spin_gauge::limit);
  for (unsigned i = 1;; ++i) {
    if (ready())
      return true;
    if (i % clock_every == 0 && std::chrono::steady_clock::now() > until)
      return false;
    pause();
  }
}

} // namespace mproc::detail
