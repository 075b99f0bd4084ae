// The shared-memory ring pair (ring.hpp).
#include "mproc/runtime/internal/ring.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

namespace mproc::detail {

static_assert(std::atomic<std::uint64_t>::is_always_lock_free
              && std::atomic<std::uint32_t>::is_always_lock_free,
              "ring positions live in memory shared between processes");

// ---- writer ----------------------------------------------------------------------------

// The reader's tail is loaded only when the room last seen does not hold what is put: each
// load takes the cache line from the reader's CPU, once per small frame otherwise.
std::size_t ring_writer::room(std::memory_order order) {
  tail_seen_ = h_->tail.load(order);
  auto used = written_ - tail_seen_;
  return used > size_ ? 0 : size_ - used;  // a tail past the head: no room, ever
}

std::size_t ring_writer::put(const char* p, std::size_t n) {
  auto used = written_ - tail_seen_;
  auto room_left = used > size_ ? 0 : size_ - used;
  if (room_left < n)
    room_left = room(std::memory_order_acquire);
  std::size_t done = 0;
  while (done < n && room_left > 0) {
    auto at = static_cast<std::size_t>(written_ & (size_ - 1));
    auto chunk = std::min({n - done, room_left, size_ - at});
    std::memcpy(data_ + at, p + done, chunk);
    done += chunk;
    written_ += chunk;
    room_left -= chunk;
  }
  return done;
}

bool ring_writer::publish() {
  if (written_ == published_)
    return false;
  published_ = written_;
  // seq_cst store and load: with the reader's go_idle (store idle, load head), one of the two
  // sees the other's write, so a reader never sleeps on bytes nobody wakes it for.
  h_->head.store(written_, std::memory_order_seq_cst);
  return h_->reader_idle.load(std::memory_order_seq_cst) != 0
         && h_->reader_idle.exchange(0, std::memory_order_seq_cst) != 0;
}

bool ring_writer::wait_for_room() {
  // seq_cst store and load, against the reader's (store tail, load writer_waits) in get().
  h_->writer_waits.store(1, std::memory_order_seq_cst);
  if (room(std::memory_order_seq_cst) == 0)
    return true;
  h_->writer_waits.store(0, std::memory_order_relaxed);
  return false;
}

std::size_t ring_writer::unread() const {
  auto used = written_ - h_->tail.load(std::memory_order_acquire);
  return used > size_ ? 0 : static_cast<std::size_t>(used);
}

// ---- reader ----------------------------------------------------------------------------

ring_reader::got ring_reader::get(char* dst, std::size_t size) {
  got g;
  auto tail = consumed_;
  auto avail = h_->head.load(std::memory_order_acquire) - tail;
  if (avail > size_) {
    g.broken = true;
    return g;
  }
  while (g.n < size && avail > 0) {
    auto at = static_cast<std::size_t>(tail & (size_ - 1));
    auto chunk = std::min({size - g.n, static_cast<std::size_t>(avail), size_ - at});
    std::memcpy(dst + g.n, data_ + at, chunk);
    g.n += chunk;
    tail += chunk;
    avail -= chunk;
  }
  if (g.n == 0)
    return g;
  consumed_ = tail;
  h_->tail.store(tail, std::memory_order_seq_cst);
  g.wake_writer = h_->writer_waits.load(std::memory_order_seq_cst) != 0
                  && h_->writer_waits.exchange(0, std::memory_order_seq_cst) != 0;
  return g;
}

bool ring_reader::more() const {
  return h_->head.load(std::memory_order_acquire) != consumed_;
}

bool ring_reader::go_idle() {
  h_->reader_idle.store(1, std::memory_order_seq_cst);
  if (h_->head.load(std::memory_order_seq_cst) == consumed_)
    return true;
  h_->reader_idle.store(0, std::memory_order_relaxed);
  return false;
}

void ring_reader::busy() {
  // A load first: a store when it is 0 already would take the line from the writer's CPU.
  if (h_->reader_idle.load(std::memory_order_relaxed) != 0)
    h_->reader_idle.store(0, std::memory_order_relaxed);
}

// ---- mapping ---------------------------------------------------------------------------

ring_mapping::ring_mapping(int memfd, char* base, bool made_here)
  : memfd_(memfd), base_(base), made_here_(made_here) {}

ring_mapping::~ring_mapping() {
  ::munmap(base_, total);
  ::close(memfd_);
}

std::unique_ptr<ring_mapping> ring_mapping::create() {
  int fd = ::memfd_create("mproc-ring", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd < 0)
    return nullptr;
  // Sealed at its size: the other side cannot shrink it under this one's mapping (a SIGBUS).
  if (::ftruncate(fd, static_cast<off_t>(total)) != 0
      || ::fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0) {
    ::close(fd);
    return nullptr;
  }
  void* mem = ::mmap(nullptr, total, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (mem == MAP_FAILED) {
    ::close(fd);
    return nullptr;
  }
  auto* base = static_cast<char*>(mem);
  new (base) ring_header;  // a fresh memfd is zeroed; the idle flags start at 1
  new (base + header_space + ring_size) ring_header;
  return std::unique_ptr<ring_mapping>(new ring_mapping(fd, base, true));
}

std::unique_ptr<ring_mapping> ring_mapping::map(int memfd) {
  struct stat st{};
  int seals = ::fcntl(memfd, F_GET_SEALS);
  constexpr int needed = F_SEAL_SHRINK | F_SEAL_GROW;
  if (::fstat(memfd, &st) != 0 || st.st_size != static_cast<off_t>(total) || seals < 0
      || (seals & needed) != needed) {
    ::close(memfd);
    return nullptr;
  }
  void* mem = ::mmap(nullptr, total, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
  if (mem == MAP_FAILED) {
    ::close(memfd);
    return nullptr;
  }
  return std::unique_ptr<ring_mapping>(new ring_mapping(memfd, static_cast<char*>(mem), false));
}

ring_header* ring_mapping::header(int direction) const {
  return reinterpret_cast<ring_header*>(base_ + direction * (header_space + ring_size));
}

char* ring_mapping::data(int direction) const {
  return base_ + direction * (header_space + ring_size) + header_space;
}

ring_writer ring_mapping::writer() const {
  int d = made_here_ ? 0 : 1;
  return {header(d), data(d), ring_size};
}

ring_reader ring_mapping::reader() const {
  int d = made_here_ ? 1 : 0;
  return {header(d), data(d), ring_size};
}

static_assert(sizeof(ring_header) <= 256, "header_space holds a ring_header");

} // namespace mproc::detail
