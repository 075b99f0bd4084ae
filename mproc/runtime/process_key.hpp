// Which process is this, and is that one still running: the identity that shared-memory
// primitives (actors/lock.hpp ...) write into their words, so that a process blocked on one
// can tell a holder that died from one that is slow.
//
// A pid alone is not enough: the kernel reuses pids, and a lock held by a dead process whose
// pid now names another would look held for ever. The key adds the process's start time
// (clock ticks since boot, field 22 of /proc/<pid>/stat), which a later process with the same
// pid cannot share. Both fit one 64-bit word, so a holder is recorded with one atomic store.
#pragma once

#include <cstdint>

#include <sys/types.h>

namespace mproc {

// pid in the high 32 bits, the low 32 bits of the start time in the low ones. 0 is nobody.
using process_key = std::uint64_t;

// This process's key, computed once (and again in a child made by fork or the fork server).
process_key this_process_key();

// False once the process ended: gone, a zombie, or its pid taken by a later process. Reads
// /proc: a few microseconds, for slow paths only.
bool process_running(process_key key);

inline pid_t pid_of(process_key key) { return static_cast<pid_t>(key >> 32); }

namespace detail {
// A child made by cloning (the fork server) computes its key afresh.
void forget_process_key();
// When `pid` started, in clock ticks since boot (field 22 of /proc/<pid>/stat); false when
// it is gone.
bool process_start_ticks(pid_t pid, std::uint64_t& ticks);
}

} // namespace mproc
