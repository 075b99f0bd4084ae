// Python's multiprocessing.connection.wait(): waits until one of several processes has ended
// or one of several connections has a message (or its end) to receive.
//
//   auto [a, b] = mproc::pipe(node);
//   for (auto i : mproc::wait({a, worker}, 5s)) ...   // indexes of the ready ones
#pragma once

#include <chrono>
#include <cstddef>
#include <optional>
#include <variant>
#include <vector>

#include "mproc/actors/pipe.hpp"
#include "mproc/runtime/process.hpp"

namespace mproc {

// What wait() watches: a process (ready once it ended) or a connection (ready when recv()
// would not wait: a whole message is here, or the other end is gone).
using waitable = std::variant<process, connection>;

// The indexes of `objects` that are ready, in order, waiting up to `timeout` (no timeout:
// until one is) for the first; empty when none became ready in time. Throws what a
// process's sentinel() or a connection's poll() throws (a process not started, a closed
// connection).
std::vector<std::size_t> wait(const std::vector<waitable>& objects,
                              std::optional<std::chrono::milliseconds> timeout = std::nullopt);

} // namespace mproc
