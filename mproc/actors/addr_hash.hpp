// The hash of an actor's address for the actors' hash tables, the null address (a message
// from nobody: anon_send, or a peer's frame without a sender) included: CAF 0.17's
// std::hash<caf::actor_addr> reads the id through the address's pointer, so one anonymous
// message reaching a lookup took the whole process down (SIGSEGV).
#pragma once

#include <cstddef>
#include <functional>

#include <caf/actor_addr.hpp>

namespace mproc::detail {

struct addr_hash {
  std::size_t operator()(const caf::actor_addr& a) const noexcept {
    return a ? std::hash<caf::actor_addr>{}(a) : 0;
  }
};

} // namespace mproc::detail
