// Protocol constants. The byte-level specification is docs/protocol.md; keep both in step.
#pragma once

#include <cstdint>

namespace mproc::wire {

// Bumped on any incompatible change to frames or envelopes. Peers must agree exactly.
inline constexpr std::uint32_t protocol_version = 1;

// First element of every envelope array.
enum class kind : std::uint8_t {
  hello = 0,      // [0, version, node, pid, name, max_frame]          first frame, both ways
  spawn = 1,      // [1, request, actor_name, main, args]              start a registered actor
  spawned = 2,    // [2, request, ok, ref | error]                     answer to spawn
  send = 3,       // [3, to_node, to_actor, from_node, from_actor, message]
  request = 4,    // [4, to_node, to_actor, from_node, from_actor, request, message]
  response = 5,   // [5, to_node, to_actor, from_node, from_actor, request, ok, message | error]
  monitor = 6,    // [6, node, actor]                                  send down when it ends
  down = 7,       // [7, node, actor, reason]                          reason: error or nil
  heartbeat = 8,  // [8]
  shutdown = 9,   // [9, reason]                                       peer is closing the link
  lookup = 10,    // [10, request, name]                               resolve a registered name
  found = 11,     // [11, request, ok, ref | error]                    answer to lookup
  fds = 12,       // [12, count]        local links: the next frame carries count descriptors
};

inline constexpr std::uint8_t kind_count = 13;

// Two more kinds, on local links only, that the link itself reads (docs/protocol.md, "Shared
// memory"); they never reach an envelope decoder:
//   [13, size]  ring: this frame's first byte brings a memfd of two rings of `size` bytes
//               each and two eventfds (the offerer's, the acceptor's)
//   [14]        ring_on: what the sender writes after this frame goes through the ring
inline constexpr std::uint8_t ring_kind = 13;
inline constexpr std::uint8_t ring_on_kind = 14;

// Most descriptors one frame carries (SCM_RIGHTS with the fds frame's first byte).
inline constexpr std::uint32_t max_fds_per_frame = 16;

// Every node accepts frames of this size; until a peer's hello tells its own maximum, a
// sender keeps its frames within it.
inline constexpr std::uint32_t min_max_frame = 1u << 20;

// Deepest nesting of arrays and maps a receiver accepts in any msgpack value it unpacks
// (envelopes, queue items, pool chunks, message bytes). Legitimate values nest a handful of
// levels; the limit keeps every recursive decoder (an error whose context holds an error...)
// far from the end of the stack.
inline constexpr std::uint32_t max_nesting = 64;

const char* kind_name(kind k);

} // namespace mproc::wire
