#include "mproc/runtime/blob.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <utility>

#include "mproc/runtime/errors.hpp"
#include "mproc/runtime/internal/blob_pool.hpp"
#include "mproc/runtime/internal/blob_segment.hpp"
#include "mproc/serialization/protocol.hpp"

namespace mproc::detail {

// A blob's bytes: on the heap, in a reusable segment (blob_segment.hpp), or in a sealed memfd
// of its own mapped into this process (fd >= 0).
class blob_memory {
public:
  // `size` bytes of `segment`, whose reference this blob holds from now on.
  static std::unique_ptr<blob_memory> in_segment(std::shared_ptr<blob_segment> segment,
                                                 std::size_t size) {
    std::unique_ptr<blob_memory> m{new blob_memory};
    m->data_ = segment->data();
    m->size_ = size;
    m->segment_ = std::move(segment);
    return m;
  }

  static std::unique_ptr<blob_memory> heap(std::size_t size) {
    std::unique_ptr<blob_memory> m{new blob_memory};
    m->heap_.reset(new char[size == 0 ? 1 : size]);
    m->data_ = m->heap_.get();
    m->size_ = size;
    wire::advise_huge_pages(m->data_, size);
    return m;
  }

  // Writable until seal(); every page is allocated here at once (MAP_POPULATE), since the
  // writer fills them all: one call instead of a fault per page.
  static std::unique_ptr<blob_memory> shared(std::size_t size) {
    std::unique_ptr<blob_memory> m{new blob_memory};
    m->fd_ = ::memfd_create("mproc-blob", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (m->fd_ < 0 || ::ftruncate(m->fd_, static_cast<off_t>(size)) != 0
        || !m->map(PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, size))
      fail("cannot make a blob of " + std::to_string(size) + " bytes: " + std::strerror(errno));
    return m;
  }

  // A shared blob that arrived as `fd` (taken: closed on failure). Null, with `why` set,
  // unless it is a memfd of `size` bytes sealed against writing and resizing: nobody can
  // change the bytes under the receiver, nor make its reads fault (SIGBUS) by shrinking it.
  // Takes `fd` only when it succeeds.
  static std::shared_ptr<const blob_memory> adopt(int fd, std::size_t size, std::string& why) {
    std::shared_ptr<blob_memory> m{new blob_memory};
    struct stat st{};
    int seals = ::fcntl(fd, F_GET_SEALS);
    if (seals < 0 || (static_cast<unsigned>(seals) & frozen) != frozen
        || !plain_shared_memory(fd) || ::fstat(fd, &st) != 0
        || static_cast<std::size_t>(st.st_size) != size || size == 0) {
      why = "the descriptor is not a sealed blob of " + std::to_string(size) + " bytes";
      return nullptr;
    }
    // Not populated here (this runs on the I/O loop, and a receiver that only sends the
    // blob on never reads it): the first read populates it (readable()).
    m->fd_ = fd;
    if (!m->map_read_only(size)) {
      why = std::string{"cannot map the blob: "} + std::strerror(errno);
      m->fd_ = -1;
      return nullptr;
    }
    return m;
  }

  ~blob_memory() {
    if (segment_)
      segment_->release();
    if (mapped_)
      ::munmap(data_, size_);
    if (fd_ >= 0)
      ::close(fd_);
  }
  blob_memory(const blob_memory&) = delete;
  blob_memory& operator=(const blob_memory&) = delete;

  // Read-only from now on, for this process and every receiver: the writable mapping goes
  // (F_SEAL_WRITE refuses while one exists) and a read-only one takes its place.
  // A segment stays writable for its owner, who writes it only once nobody holds it.
  void seal() {
    if (fd_ < 0)
      return;
    ::munmap(data_, size_);
    mapped_ = false;
    auto size = std::exchange(size_, 0);
    data_ = nullptr;
    if (::fcntl(fd_, F_ADD_SEALS, frozen | F_SEAL_SEAL) != 0 || !map_read_only(size))
      fail(std::string{"cannot seal a blob: "} + std::strerror(errno));
  }

  char* data() const { return data_; }

  // The bytes, their mapping populated at the first call: one system call instead of a
  // fault every few pages as the reader goes, which on a VM where faults are dear cost
  // more than the copy a blob saves (bench's child reading 1 MiB blobs: 1.77-1.88 ->
  // 2.59-2.64 GB/s populated as mapped; 64 MiB: 2.0-2.2 -> 3.2-3.4 GB/s populated at the
  // first read). The call costs time in proportion to the size, even for a reader that reads
  // little: beyond 128 MiB a blob is more likely data of which each reader reads a
  // part, and is faulted in as read. Two first readers at once both populate, which is
  // harmless.
  const char* readable() const {
    if (segment_)
      return segment_->readable(size_);
    if (mapped_)
      populate(data_, size_, populated_);
    return data_;
  }
  std::size_t size() const { return size_; }
  int fd() const { return segment_ ? segment_->fd() : fd_; }
  bool in_segment() const { return segment_ != nullptr; }

  // A descriptor for a frame (closed by it if unsent), or -1. A segment counts the frame's
  // reference, which only the receiver gives back: a frame that failed part way may have
  // handed its descriptors over with its first bytes, so a sender cannot know that it is
  // the one to give it back; a frame that never went out leaves the count high, which only
  // keeps the segment from being reused (blob_segment.hpp).
  int descriptor_to_send() const {
    int copy = ::fcntl(fd(), F_DUPFD_CLOEXEC, 0);
    if (copy >= 0 && segment_)
      segment_->retain();
    return copy;
  }

private:
  static constexpr unsigned frozen = F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW;

  blob_memory() = default;

  [[noreturn]] static void fail(const std::string& what) {
    throw mproc::error{make_error(errc::bad_arguments, what), what};
  }

  // Private, not shared: before Linux 6.7 a shared mapping of a write-sealed memfd is
  // refused even read-only (it could be mprotect'ed writable). Nothing ever writes to this
  // one, so it maps the memfd's own pages and copies none.
  bool map_read_only(std::size_t size) {
    return map(PROT_READ, MAP_PRIVATE, size);
  }

  bool map(int prot, int flags, std::size_t size) {
    void* p = ::mmap(nullptr, size, prot, flags, fd_, 0);
    if (p == MAP_FAILED)
      return false;
    data_ = static_cast<char*>(p);
    size_ = size;
    mapped_ = true;
    return true;
  }

  int fd_ = -1;
  bool mapped_ = false;
  mutable std::atomic<std::size_t> populated_ = 0;
  std::shared_ptr<blob_segment> segment_;
  std::unique_ptr<char[]> heap_;
  char* data_ = nullptr;
  std::size_t size_ = 0;
};

namespace {

std::unique_ptr<blob_memory> make_memory(std::size_t size) {
  if (size < blob::shared_min)
    return blob_memory::heap(size);
  if (auto segment = take_segment(size))
    return blob_memory::in_segment(std::move(segment), size);
  return blob_memory::shared(size);  // too large for the pool: a sealed memfd of its own
}

} // namespace
} // namespace mproc::detail

namespace mproc {

blob::blob(const char* data, std::size_t size) {
  blob_writer w{size};
  if (size != 0)
    std::memcpy(w.data(), data, size);
  *this = std::move(w).finish();
}

const char* blob::data() const { return mem_ ? mem_->readable() : ""; }
std::size_t blob::size() const { return mem_ ? mem_->size() : 0; }
bool blob::shared() const { return mem_ && mem_->fd() >= 0; }

blob_writer::blob_writer(std::size_t size) : mem_{detail::make_memory(size)} {}
blob_writer::~blob_writer() = default;
blob_writer::blob_writer(blob_writer&&) noexcept = default;
blob_writer& blob_writer::operator=(blob_writer&&) noexcept = default;

char* blob_writer::data() { return mem_ ? mem_->data() : nullptr; }
std::size_t blob_writer::size() const { return mem_ ? mem_->size() : 0; }

blob blob_writer::finish() && {
  if (!mem_)
    return blob{};
  mem_->seal();
  return blob{std::shared_ptr<const detail::blob_memory>{std::move(mem_)}};
}

} // namespace mproc

namespace mproc::wire {

void codec<blob>::encode(packer& pk, const blob& b, codec_state& st) {
  const auto* m = b.mem_.get();
  if (m != nullptr && m->fd() >= 0 && st.descriptors != nullptr
      && st.descriptors->size() < max_fds_per_frame) {
    int copy = m->descriptor_to_send();
    if (copy >= 0) {
      auto index = static_cast<std::uint32_t>(st.descriptors->size());
      st.descriptors->push_back(copy);  // the frame owns it now, and closes it if unsent
      pk.pack_array(m->in_segment() ? 3 : 2);
      pk.pack(index);
      pk.pack(static_cast<std::uint64_t>(m->size()));
      if (m->in_segment())
        pk.pack(true);
      return;
    }
  }
  pack_raw(pk, st, b.data(), b.size(), true);  // the bytes inside the frame instead
}

bool codec<blob>::decode(const msgpack::object& o, blob& out, codec_state& st) {
  if (o.type == msgpack::type::BIN) {
    try {  // a copy: from shared_min on into a memfd, so it can be sent on without one
      auto m = mproc::detail::make_memory(o.via.bin.size);
      if (o.via.bin.size != 0)
        std::memcpy(m->data(), o.via.bin.ptr, o.via.bin.size);
      m->seal();
      out = blob{std::shared_ptr<const mproc::detail::blob_memory>{std::move(m)}};
    } catch (const mproc::error& e) {
      return st.fail(std::string{"blob: "} + e.what());
    }
    return true;
  }
  std::uint32_t index = 0;
  std::uint64_t size = 0;
  bool segment = false;
  auto n = o.type == msgpack::type::ARRAY ? o.via.array.size : 0;
  if (n != 2 && n != 3)
    return type_mismatch(st, "blob (bin or [descriptor, size, true?])", o);
  if (!codec<std::uint32_t>::decode(o.via.array.ptr[0], index, st)
      || !codec<std::uint64_t>::decode(o.via.array.ptr[1], size, st)
      || (n == 3 && !codec<bool>::decode(o.via.array.ptr[2], segment, st)))
    return false;
  if (n == 3 && !segment)
    return type_mismatch(st, "blob ([descriptor, size, true] for a segment)", o);
  auto* fds = st.descriptors;
  if (fds == nullptr || index >= fds->size() || (*fds)[index] < 0)
    return st.fail("blob: descriptor " + std::to_string(index) + " did not come with the frame");
  int fd = std::exchange((*fds)[index], -1);
  std::string why;
  if (segment) {
    auto s = mproc::detail::received_segment(fd, why);
    if (s && size != 0 && size <= s->capacity()) {
      out = blob{mproc::detail::blob_memory::in_segment(std::move(s), size)};
      return true;
    }
    if (s) {  // refused: the frame's reference goes back
      why = "a blob of " + std::to_string(size) + " bytes in a segment of "
            + std::to_string(s->capacity());
      s->release();
    }
    return st.fail("blob: " + why);
  }
  auto m = mproc::detail::blob_memory::adopt(fd, size, why);
  if (!m) {
    // Refused, and still ours: a segment sent as a plain blob (a peer's mistake) gives its
    // reference back, or its owner could not write it again until its pool trims it.
    mproc::detail::close_unclaimed(fd);
    return st.fail("blob: " + why);
  }
  out = blob{std::move(m)};
  return true;
}

} // namespace mproc::wire
