// A mutual exclusion word in shared memory owned by a process, not a thread, and freed when
// that process dies: the core of Lock and RLock, and the short internal guard of Semaphore
// and Barrier. Internal to actors/.
//
// The word holds the owner's process_key, so taking it is one compare-and-swap and giving it
// back one exchange: no system call, nothing crosses processes, unless someone waits. A
// waiter sleeps on a futex and, every death_check_period with the same owner, checks that
// the owner still runs; if not, it takes the word over and is told (owner_died), as a robust
// pthread mutex returns EOWNERDEAD. A process, not a thread, owns it, because a Python Lock
// may be released by another thread than the one that acquired it, and a thread that ends
// while its process lives still holds what it acquired.
#pragma once

#include <atomic>
#include <cstdint>

#include "mproc/actors/futex.hpp"
#include "mproc/runtime/process_key.hpp"

namespace mproc::detail {

struct process_mutex {
  std::atomic<process_key> owner{0};     // 0: free
  std::atomic<std::uint32_t> released{0};  // futex word: bumped by each give_back
  std::atomic<std::uint32_t> sleepers{0};  // processes in futex_wait on `released`
};
static_assert(std::atomic<process_key>::is_always_lock_free);

enum class taken { yes, owner_died, no };

// Takes `m` for this process before `until`. owner_died: taken from a holder that died.
taken take(process_mutex& m, const deadline& until);
// Frees `m` whoever holds it and wakes one waiter; false if it was free.
bool give_back(process_mutex& m);

inline bool held_by_me(const process_mutex& m) {
  return m.owner.load(std::memory_order_relaxed) == this_process_key();
}

} // namespace mproc::detail
