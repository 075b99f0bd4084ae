// The manager actor's one message (docs/manager.md lists the operations, for clients in
// other languages):
//
//   ("m_call", u64 object, atom op, vec<bytes> args) -> vec<bytes>
//
// Every argument and every result is one msgpack value in its own bytes: the manager
// stores keys and values as those bytes and never needs their C++ types. Object 0 is the
// manager itself (create, release, stop).
#pragma once

#include <cstdint>
#include <vector>

#include <caf/atom.hpp>

#include "mproc/serialization/bytes.hpp"

namespace mproc::detail {

using m_call_atom = caf::atom_constant<caf::atom("m_call")>;

using manager_args = std::vector<bytes>;
using manager_reply = std::vector<bytes>;

// The manager itself, as an object.
inline constexpr std::uint64_t manager_object = 0;

} // namespace mproc::detail
