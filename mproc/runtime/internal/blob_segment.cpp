#include "mproc/runtime/internal/blob_segment.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <ctime>

namespace mproc::detail {

// The segment's first page, shared by every process that maps it (protocol.md, "Blob segments").
struct blob_segment::header {
  static constexpr std::uint64_t expected_magic = 0x6d70726f632d7367;  // "mproc-sg"
  std::uint64_t magic;
  std::uint64_t capacity;
  std::atomic<std::uint32_t> references;
  std::atomic<std::uint32_t> retired;
  std::uint64_t id;
};
static_assert(std::atomic<std::uint32_t>::is_always_lock_free);

namespace {

constexpr unsigned resizing = F_SEAL_SHRINK | F_SEAL_GROW;
constexpr std::size_t page = blob_segment::header_size;
// Beyond this a blob is more likely data of which each reader reads a part (blob.cpp).
constexpr std::size_t populate_max = std::size_t{128} << 20;

std::uint64_t random_id() {
  std::uint64_t id = 0;
  for (int tries = 0; tries < 3 && id == 0; ++tries)
    if (::getrandom(&id, sizeof id, 0) != sizeof id)
      id = 0;
  if (id == 0)  // no entropy to be had: unique enough among this machine's live segments
    id = (static_cast<std::uint64_t>(::getpid()) << 32)
         ^ static_cast<std::uint64_t>(::time(nullptr)) ^ reinterpret_cast<std::uintptr_t>(&id);
  return id;
}

} // namespace

blob_segment::~blob_segment() {
  if (data_ != nullptr)
    ::munmap(data_, capacity_);
  if (header_ != nullptr)
    ::munmap(header_, header_size);
  if (fd_ >= 0)
    ::close(fd_);
}

void blob_segment::retain() const {
  header_->references.fetch_add(1, std::memory_order_relaxed);
}

void blob_segment::release() const {
  if (::getpid() == pid_)  // a forked copy of a holder holds nothing (blob.hpp)
    header_->references.fetch_sub(1, std::memory_order_release);
}

bool blob_segment::unused() const {
  return header_->references.load(std::memory_order_acquire) == 0;
}

bool blob_segment::claim() {
  if (!owned_ || retired())
    return false;
  // From zero only: a reader's last reads happen before its release, which this acquires.
  std::uint32_t none = 0;
  return header_->references.compare_exchange_strong(none, 1, std::memory_order_acquire,
                                                     std::memory_order_relaxed);
}

void blob_segment::retire() { header_->retired.store(1, std::memory_order_release); }

bool blob_segment::retired() const {
  return header_->retired.load(std::memory_order_acquire) != 0;
}

void populate(char* data, std::size_t size, std::atomic<std::size_t>& done_so_far) {
  auto done = done_so_far.load(std::memory_order_relaxed);
  if (size <= done || size > populate_max)
    return;
  auto from = done / page * page;  // madvise wants a page-aligned start
#ifdef MADV_POPULATE_READ
  ::madvise(data + from, size - from, MADV_POPULATE_READ);  // refused before Linux 5.14
#endif
  // Only ever up: a reader that populated more meanwhile keeps its figure.
  while (done < size && !done_so_far.compare_exchange_weak(done, size, std::memory_order_relaxed))
    ;
}

const char* blob_segment::readable(std::size_t size) const {
  populate(data_, size, populated_);
  return data_;
}

void blob_segment::release_through(int fd, std::uint64_t id) {
  void* h = ::mmap(nullptr, header_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (h == MAP_FAILED)
    return;
  auto* head = static_cast<header*>(h);
  if (head->magic == header::expected_magic && head->id == id)
    head->references.fetch_sub(1, std::memory_order_release);
  ::munmap(h, header_size);
}

bool blob_segment::sealed_as_one(int fd) {
  int seals = ::fcntl(fd, F_GET_SEALS);
  return seals >= 0 && (static_cast<unsigned>(seals) & (resizing | F_SEAL_WRITE)) == resizing
         && plain_shared_memory(fd);
}

bool blob_segment::read_id(int fd, std::uint64_t& id) {
  return ::pread(fd, &id, sizeof id, offsetof(header, id)) == sizeof id;
}

std::shared_ptr<blob_segment> blob_segment::create(std::size_t capacity) {
  static_assert(offsetof(header, capacity) == 8 && offsetof(header, references) == 16
                && offsetof(header, retired) == 20 && offsetof(header, id) == 24
                && sizeof(header) <= header_size);  // the layout protocol.md gives
  std::shared_ptr<blob_segment> s{new blob_segment};
  s->owned_ = true;
  s->pid_ = ::getpid();
  s->fd_ = ::memfd_create("mproc-blob", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  struct stat st{};
  if (s->fd_ < 0 || ::ftruncate(s->fd_, static_cast<off_t>(header_size + capacity)) != 0
      || ::fcntl(s->fd_, F_ADD_SEALS, resizing | F_SEAL_SEAL) != 0 || ::fstat(s->fd_, &st) != 0)
    return nullptr;
  void* h = ::mmap(nullptr, header_size, PROT_READ | PROT_WRITE, MAP_SHARED, s->fd_, 0);
  if (h == MAP_FAILED)
    return nullptr;
  s->header_ = static_cast<header*>(h);
  // Populated: the writer fills every page, one call instead of a fault per page.
  void* d = ::mmap(nullptr, capacity, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, s->fd_,
                   static_cast<off_t>(header_size));
  if (d == MAP_FAILED)
    return nullptr;
  s->data_ = static_cast<char*>(d);
  s->capacity_ = capacity;
  s->populated_ = capacity;
  s->dev_ = st.st_dev;
  s->ino_ = st.st_ino;
  s->id_ = random_id();
  s->header_->magic = header::expected_magic;
  s->header_->capacity = capacity;
  s->header_->id = s->id_;
  s->header_->references.store(1, std::memory_order_relaxed);
  return s;
}

std::shared_ptr<blob_segment> blob_segment::map_received(int fd, std::string& why) {
  std::shared_ptr<blob_segment> s{new blob_segment};
  s->fd_ = fd;
  s->pid_ = ::getpid();
  struct stat st{};
  if (!sealed_as_one(fd) || ::fstat(fd, &st) != 0
      || static_cast<std::size_t>(st.st_size) <= header_size) {
    why = "the descriptor is not a blob segment sealed against resizing";
    return nullptr;
  }
  void* h = ::mmap(nullptr, header_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (h == MAP_FAILED) {
    why = std::string{"cannot map the blob segment: "} + std::strerror(errno);
    return nullptr;
  }
  s->header_ = static_cast<header*>(h);
  auto capacity = static_cast<std::size_t>(st.st_size) - header_size;
  if (s->header_->magic != header::expected_magic || s->header_->capacity != capacity) {
    why = "the descriptor is not a blob segment";
    return nullptr;
  }
  // Read-only here: only its owner writes, and only when nobody holds it.
  void* d = ::mmap(nullptr, capacity, PROT_READ, MAP_SHARED, fd, static_cast<off_t>(header_size));
  if (d == MAP_FAILED) {
    why = std::string{"cannot map the blob segment: "} + std::strerror(errno);
    s->release();  // the frame's reference goes back: refused, the segment is its owner's again
    return nullptr;
  }
  s->data_ = static_cast<char*>(d);
  s->capacity_ = capacity;
  s->dev_ = st.st_dev;
  s->ino_ = st.st_ino;
  s->id_ = s->header_->id;
  return s;
}

bool plain_shared_memory(int fd) {
  constexpr long tmpfs_magic = 0x01021994;  // TMPFS_MAGIC, <linux/magic.h>: memfds are on it too
  struct statfs fs{};
  return ::fstatfs(fd, &fs) == 0 && static_cast<long>(fs.f_type) == tmpfs_magic;
}

bool segments_available() {
  static const bool available = ::sysconf(_SC_PAGESIZE) == static_cast<long>(page);
  return available;
}

} // namespace mproc::detail
