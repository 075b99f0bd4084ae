// Reusable shared memory for blobs: a memfd whose first page counts the references held to it
// in every process, so that the process that made it can write the next blob into it once
// nobody holds the last one, and a receiver that keeps its mapping reads the next blob through
// page table entries it already has.
//
// Why: on a VM a new mapping's first touch of each page costs 1-3 us (the host syncs its page
// tables), more than copying the page; a raw socketpair copies into buffers it reuses and
// never pays it. A sealed memfd per blob is a new mapping per message in every receiver.
//
//   made by the owner:  references = 1 (its writer), sealed against resizing, never writing
//   sent (by anyone):   one more reference per frame that carries its descriptor; the frame's
//                       receiver takes it over, and gives it back if it drops the frame (the
//                       sender never does: a frame that failed part way may have delivered
//                       its descriptors)
//   dropped anywhere:   one fewer; at zero the owner may claim it for another blob
//   retired:            the owner left it out of its pool: receivers unmap it when idle
//
// A count too high (a frame that never went out, a holder killed) only keeps the segment
// from being reused; the owner's pool is bounded and leaves out its oldest segments to stay
// within the bound. Only mproc's code handles the descriptors: a process that received one
// could write the segment or its count, as it could any shared memory of the program.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace mproc::detail {

class blob_segment {
public:
  static constexpr std::size_t header_size = 4096;  // the data starts on a page
  ~blob_segment();
  blob_segment(const blob_segment&) = delete;
  blob_segment& operator=(const blob_segment&) = delete;

  char* data() const { return data_; }  // writable only in the owner, and only while claimed
  std::size_t capacity() const { return capacity_; }
  int fd() const { return fd_; }
  bool owned() const { return owned_; }
  // The same segment: the file (inode numbers may repeat on kernels before 5.9) and the
  // random id its owner wrote in its header.
  bool same(dev_t dev, ino_t ino, std::uint64_t id) const {
    return dev_ == dev && ino_ == ino && id_ == id;
  }

  void retain() const;   // a frame carries a reference
  void release() const;  // a holder in this process is gone (not in a forked copy of it)
  bool unused() const;   // no reference in any process
  bool claim();          // owner: an unused segment gets its next writer's reference
  void retire();         // owner: out of the pool, never written again
  bool retired() const;

  // The bytes up to `size`, populated at the first call that reaches them (blob.hpp says why).
  const char* readable(std::size_t size) const;

private:
  struct header;
  friend class segment_pool;
  blob_segment() = default;
  static std::shared_ptr<blob_segment> create(std::size_t capacity);
  static std::shared_ptr<blob_segment> map_received(int fd, std::string& why);
  static bool sealed_as_one(int fd);  // against resizing, not writing: maybe a segment
  static bool read_id(int fd, std::uint64_t& id);
  static void release_through(int fd, std::uint64_t id);  // one reference, header only

  header* header_ = nullptr;
  char* data_ = nullptr;
  std::size_t capacity_ = 0;
  int fd_ = -1;
  bool owned_ = false;
  pid_t pid_ = 0;
  dev_t dev_ = 0;
  ino_t ino_ = 0;
  std::uint64_t id_ = 0;
  std::chrono::steady_clock::time_point idle_since_{};  // the pool's, under its lock
  mutable std::atomic<std::size_t> populated_ = 0;
};

// Populates [0, size) of a read-only mapping at `data` of which `done_so_far` bytes are
// populated already, in one call (blob.cpp says why), unless size is above 128 MiB.
void populate(char* data, std::size_t size, std::atomic<std::size_t>& done_so_far);

// Whether blobs may use segments here: the header is one 4096-byte page (protocol.md).
bool segments_available();

// Whether `fd` is a file of ordinary shared memory (a memfd or tmpfs file, in pages of the
// system's size): what a blob or a segment must be. A huge-page memfd from a peer would be
// mapped in huge pages, which the 4 KiB unmapping of a segment's header cannot undo (the
// mapping would leak, one per frame, until the process runs out of them).
bool plain_shared_memory(int fd);

} // namespace mproc::detail
