// The background writer of pipe ends: one thread per process, started the first time an
// end has bytes its socket did not take, writing them as the other end reads. Before the
// process ends (node::at_exit) it writes what is left, for up to drain_timeout, so a
// message sent just before the end of main still arrives, as with a queue.
#pragma once

#include <chrono>
#include <memory>

namespace mproc::detail {

class pipe_socket;

namespace pipe_flusher {

inline constexpr std::chrono::seconds drain_timeout{10};

// Keeps `end` (and so its socket) until its unsent bytes are written or can never be.
void watch(std::shared_ptr<pipe_socket> end);

} // namespace pipe_flusher

} // namespace mproc::detail
