// Starting a queue actor (the server side of actors/queue.hpp).
#pragma once

#include <cstddef>

#include <caf/actor.hpp>
#include <caf/fwd.hpp>

#include "mproc/serialization/bytes.hpp"

namespace mproc::detail {

struct queue_config {
  std::size_t maxsize = 0;  // 0: unbounded
};

caf::actor spawn_queue_server(caf::actor_system& sys, queue_config config);

} // namespace mproc::detail
