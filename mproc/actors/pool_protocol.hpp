// The messages between a pool's dispatcher and its workers (docs/pool.md).
#pragma once

#include <cstddef>

#include <caf/allowed_unsafe_message_type.hpp>
#include <caf/atom.hpp>
#include <caf/error.hpp>

namespace mproc::detail {

// Worker -> dispatcher: ("pool_pull", items results, u32 allowance, u32 max_frame,
// u64 busy_ns) -> items chunks, both batches as the queue's (item_batch: one buffer, not one
// allocation per chunk). `results` answers the chunks of the previous answer, in order;
// `busy_ns` is how long running them took (the task's pace, pool_pace.hpp); at most
// `allowance` chunks come back (maxtasksperchild), within the worker's `max_frame`. No
// chunks at all means: quit.
using pool_pull_atom = caf::atom_constant<caf::atom("pool_pull")>;
// Worker -> dispatcher: ("pool_res", items results), results ahead of the next pull's, in
// order, when they would not fit in one message with it (node_options::max_frame).
using pool_results_atom = caf::atom_constant<caf::atom("pool_res")>;

// Local, to the dispatcher: from the pool's handle, the node's callbacks on its workers and
// its own timers. A type of this process, never registered for the wire: a worker, or any
// actor reaching the dispatcher, cannot close, terminate or kill the pool, start workers or
// say one ended (atoms, which anyone can send, could).
struct pool_control {
  enum kind { submit, close, terminate, kill, respawn, started, exited } what;
  std::size_t seq = 0;  // started, exited: the worker's number
  int code = 0;         // exited: its exit code
  caf::error error;     // started: why it could not
};
using pool_inspect_atom = caf::atom_constant<caf::atom("pool_insp")>;  // -> value (inspect_pool)

// The registered name of the worker actor; calling it also links its registration in.
const char* pool_worker_name();

} // namespace mproc::detail

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(mproc::detail::pool_control)
