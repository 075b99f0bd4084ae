// The messages of a queue actor (docs/queue.md lists them for actors that talk to it
// directly). Items travel as opaque bytes: the queue never decodes what it stores.
#pragma once

#include <caf/atom.hpp>

namespace mproc::detail {

// ("q_put", vec<bytes>) -> ()            held while a bounded queue has no room
using q_put_atom = caf::atom_constant<caf::atom("q_put")>;
// ("q_putnow", vec<bytes>) -> ()         error full at once
using q_putnow_atom = caf::atom_constant<caf::atom("q_putnow")>;
// ("q_get", u32 max, u64 done) -> vec<bytes>   held while empty; error closed when drained
//                                               and no other consumer holds items
using q_get_atom = caf::atom_constant<caf::atom("q_get")>;
// ("q_getnow", u32 max, u64 done) -> vec<bytes>   error empty at once
using q_getnow_atom = caf::atom_constant<caf::atom("q_getnow")>;
// ("q_cancel")                                  async: the sender no longer waits for items
using q_cancel_atom = caf::atom_constant<caf::atom("q_cancel")>;
// ("q_leave", u64 done) -> ()   a consumer leaves: `done` of its oldest items are finished,
//                               the rest of what it was handed goes back to the queue
using q_leave_atom = caf::atom_constant<caf::atom("q_leave")>;
// ("q_recall")                                  async, queue -> consumer: another consumer
//                                               waits; give back what you fetched and did
//                                               not take (or some of it) with q_return
// ("q_recall", u64 token)                       the queue's own timer (queue_recall.hpp)
using q_recall_atom = caf::atom_constant<caf::atom("q_recall")>;
// ("q_return", u64 from, u64 n)                 async: items from..from+n of those handed to
//                                               the sender (counted from 0) go back to the
//                                               queue
using q_return_atom = caf::atom_constant<caf::atom("q_return")>;
// ("q_ack", vec<u64> spans)                     async: the sender finished these items:
//                                               first and n of each span, places among those
//                                               handed to it (counted from 0)
using q_ack_atom = caf::atom_constant<caf::atom("q_ack")>;
// ("q_stats") -> (u64 size, u64 accepted, u64 redelivered, u64 unacknowledged)
using q_stats_atom = caf::atom_constant<caf::atom("q_stats")>;
// ("q_inspect") -> value: a map of the queue's figures, for `mproc ps` (inspect_queue)
using q_inspect_atom = caf::atom_constant<caf::atom("q_inspect")>;
// ("q_size") -> (u64 size, u64 maxsize, bool closed)
using q_size_atom = caf::atom_constant<caf::atom("q_size")>;
// ("q_close") -> ()
using q_close_atom = caf::atom_constant<caf::atom("q_close")>;
// ("q_done", u64 n) -> ()                JoinableQueue.task_done, n times
// ("q_done", u64 n, u64 done) -> ()      the same, acknowledging `done` of the sender's oldest items
// ("q_done", u64 n, vec<u64> done) -> ()  the same, acknowledging the items named (q_ack)
using q_done_atom = caf::atom_constant<caf::atom("q_done")>;
// ("q_join") -> ()                       held until every item put was task_done
// ("q_join", u64 ms) -> ()               the same, or error timeout after `ms`
using q_join_atom = caf::atom_constant<caf::atom("q_join")>;

// Between a handle and its process-local agent: agent_call (queue_agent.hpp), never on the
// wire.

} // namespace mproc::detail
