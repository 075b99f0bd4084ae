// Expiry of a CAF weak actor reference without taking a strong one: lock() followed by the
// strong reference's release could run an actor's destructor where a mutex is held.
#pragma once

#include <caf/actor_control_block.hpp>

namespace mproc::detail {

inline bool expired(const caf::weak_actor_ptr& w) {
  return !w || w.get()->strong_refs.load(std::memory_order_acquire) == 0;
}

} // namespace mproc::detail
