// A message as self-contained bytes — the wire's [tag, value, ...] array — for carrying
// messages inside other data (a pipe's items). Actor references cannot travel this way:
// they belong to a link (docs/protocol.md, section 4).
#pragma once

#include <caf/message.hpp>

#include "mproc/serialization/bytes.hpp"

namespace mproc {

// Throws mproc::error: unknown_message_type for an unregistered element type.
bytes to_bytes(const caf::message& msg);
// Throws mproc::error: unknown_message_type, bad_message.
caf::message from_bytes(const bytes& data);

} // namespace mproc
