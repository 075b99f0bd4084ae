// Waiting inside an actor without holding up the node's I/O.
//
// mproc's I/O thread runs the actors a frame was for itself, with its loop handed to a
// second thread for as long as they run. When one of them waits (for a reply, a lock, an
// item), that second thread must take the loop over, or whatever it waits for may arrive on
// a loop that nobody reads until a timer notices, 4-8 ms later. mproc's own blocking calls
// say so at once; code that waits by other means (its own condition variable, a pipe of its
// own) calls will_block() first to get the same.
#pragma once

namespace mproc {

// If this thread is running actors for its node's I/O thread, the loop passes to the other
// loop thread now. Anywhere else (a blocking actor, a plain thread) it does nothing, cheaply.
void will_block() noexcept;

} // namespace mproc
