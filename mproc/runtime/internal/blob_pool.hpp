// This process's blob segments (blob_segment.hpp): the pool of those it made, which it writes
// new blobs into once nobody holds them, and the mappings of those it received, which it
// keeps so that a segment received again is read through the same page table entries. Both
// are bounded, and a thread of the pool's lets go of segments nobody used for a while.
#pragma once

#include <cstddef>
#include <memory>
#include <string>

namespace mproc::detail {

class blob_segment;

// A segment of at least `size` bytes for a new blob, with its writer's reference; null when
// `size` is above the pool's bound or the kernel refuses (the blob then takes a sealed memfd
// of its own).
std::shared_ptr<blob_segment> take_segment(std::size_t size);

// The segment behind a received descriptor (taken: closed once its mapping is known or on
// failure); null, with `why` set, unless it is one. A segment received before is not mapped
// again.
std::shared_ptr<blob_segment> received_segment(int fd, std::string& why);

// From now on a thread may let go of idle segments. A node allows it when it starts: before,
// the process may be a fork server, which must stay single-threaded.
void allow_segment_trimming();

// Closes `fd`, a descriptor a frame brought and no value took; if it is a blob segment, gives
// back the reference its sender counted for the frame.
void close_unclaimed(int fd);

} // namespace mproc::detail
