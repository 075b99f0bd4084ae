#include "mproc/runtime/internal/blob_segment.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <ctime>
#include <iterator>
#include <mutex>
#include <vector>

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
constexpr std::size_t populate_max = std::size_t{128} << 20;  // as a sealed blob's (blob.cpp)

std::size_t page_rounded(std::size_t size) { return (size + page - 1) / page * page; }

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

const char* blob_segment::readable(std::size_t size) const {
  auto done = populated_.load(std::memory_order_relaxed);
  if (size > done && size <= populate_max) {
    auto from = done / page * page;  // madvise wants a page-aligned start
#ifdef MADV_POPULATE_READ
    ::madvise(data_ + from, size - from, MADV_POPULATE_READ);  // refused before Linux 5.14
#endif
    // Only ever up: a reader that populated more meanwhile keeps its figure.
    while (done < size && !populated_.compare_exchange_weak(done, size, std::memory_order_relaxed))
      ;
  }
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
  int seals = ::fcntl(fd, F_GET_SEALS);
  if (seals < 0 || (static_cast<unsigned>(seals) & resizing) != resizing || ::fstat(fd, &st) != 0
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
    return nullptr;
  }
  s->data_ = static_cast<char*>(d);
  s->capacity_ = capacity;
  s->dev_ = st.st_dev;
  s->ino_ = st.st_ino;
  s->id_ = s->header_->id;
  return s;
}

// This process's segments: the pool it made (bounded; reused once unused everywhere) and the
// segments it received (mappings kept while the bound allows, so that one received again is
// read through page table entries this process already has). Making, mapping and unmapping
// happen outside the lock: they take milliseconds, and the I/O loop decodes under it.
class segment_pool {
public:
  static segment_pool& instance() {
    static auto* pool = new segment_pool;  // never destroyed: blobs may outlive static objects
    return *pool;
  }

  std::shared_ptr<blob_segment> take(std::size_t size) {
    if (size > budget || !segments_available())
      return nullptr;
    auto capacity = page_rounded(size);
    list dropped;  // destroyed after the lock is let go (declared before it)
    {
      std::lock_guard lock{mutex_};
      forget_after_fork(dropped);
      if (auto s = reuse(size))
        return s;
      make_room(owned_, capacity, dropped, [](const auto& s) { return s->unused(); });
      make_room(owned_, capacity, dropped, [](const auto&) { return true; });  // held too long
    }
    auto s = blob_segment::create(capacity);
    if (s) {
      std::lock_guard lock{mutex_};
      // Other threads may have made segments meanwhile: the bound holds all the same.
      make_room(owned_, capacity, dropped, [](const auto& o) { return o->unused(); });
      owned_.push_back(s);
    }
    return s;
  }

  std::shared_ptr<blob_segment> received(int fd, std::string& why) {
    struct stat st{};
    std::uint64_t id = 0;
    if (::fstat(fd, &st) != 0 || !blob_segment::read_id(fd, id)) {
      why = "the descriptor is not a blob segment";
      ::close(fd);
      return nullptr;
    }
    list dropped;
    if (auto s = known(st, id, dropped)) {
      ::close(fd);
      return s;
    }
    auto s = blob_segment::map_received(fd, why);
    if (!s)
      return nullptr;
    std::lock_guard lock{mutex_};
    if (auto again = find_any(st, id)) {  // another thread mapped it meanwhile
      dropped.push_back(std::move(s));
      return again;
    }
    drop_if(received_, dropped, [](const auto& r) { return idle(r) && r->retired(); });
    make_room(received_, s->capacity(), dropped, idle);
    received_.push_back(s);
    return s;
  }

  // A frame's reference to the segment behind `fd`, which no value took, given back.
  void give_back(int fd) {
    int seals = ::fcntl(fd, F_GET_SEALS);
    struct stat st{};
    std::uint64_t id = 0;
    if (seals < 0 || (static_cast<unsigned>(seals) & (resizing | F_SEAL_WRITE)) != resizing
        || ::fstat(fd, &st) != 0 || !blob_segment::read_id(fd, id))
      return;  // not a segment: another kind of descriptor, or a sealed blob
    list dropped;
    if (auto s = known(st, id, dropped)) {
      s->release();
      return;
    }
    blob_segment::release_through(fd, id);  // not mapped here: through its header alone
  }

private:
  static constexpr std::size_t budget = std::size_t{256} << 20;  // per list
  static constexpr std::size_t max_segments = 64;                // per list

  using list = std::vector<std::shared_ptr<blob_segment>>;

  // No blob of this process holds it (only its list does).
  static bool idle(const std::shared_ptr<blob_segment>& s) { return s.use_count() == 1; }

  std::shared_ptr<blob_segment> known(const struct stat& st, std::uint64_t id, list& dropped) {
    std::lock_guard lock{mutex_};
    forget_after_fork(dropped);
    return find_any(st, id);
  }

  std::shared_ptr<blob_segment> find_any(const struct stat& st, std::uint64_t id) {
    for (auto* l : {&owned_, &received_})
      if (auto s = find(*l, st.st_dev, st.st_ino, id))
        return s;
    return nullptr;
  }

  // Found segments move to the back: the lists run from least to most recently used.
  static std::shared_ptr<blob_segment> find(list& l, dev_t dev, ino_t ino, std::uint64_t id) {
    auto it = std::find_if(l.begin(), l.end(), [&](const auto& s) { return s->same(dev, ino, id); });
    if (it == l.end())
      return nullptr;
    std::rotate(it, it + 1, l.end());
    return l.back();
  }

  // The smallest unused segment that fits without wasting half of it, claimed.
  std::shared_ptr<blob_segment> reuse(std::size_t size) {
    std::shared_ptr<blob_segment>* best = nullptr;
    for (auto& s : owned_)
      if (s->capacity() >= size && s->capacity() / 2 < size && s->unused()
          && (best == nullptr || s->capacity() < (*best)->capacity()))
        best = &s;
    if (best == nullptr || !(*best)->claim())
      return nullptr;
    auto s = *best;
    find(owned_, s->dev_, s->ino_, s->id_);
    return s;
  }

  // Moves out, least recently used first, the segments `may_go` allows until `capacity` more
  // fits; the owner's are retired.
  template <class Predicate>
  static void make_room(list& l, std::size_t capacity, list& dropped, Predicate may_go) {
    std::size_t total = capacity;
    for (const auto& s : l)
      total += s->capacity();
    for (auto it = l.begin(); it != l.end() && (total > budget || l.size() >= max_segments);) {
      if (!may_go(*it)) {
        ++it;
        continue;
      }
      total -= (*it)->capacity();
      it = drop(l, it, dropped);
    }
  }

  template <class Predicate>
  static void drop_if(list& l, list& dropped, Predicate pred) {
    for (auto it = l.begin(); it != l.end();)
      it = pred(*it) ? drop(l, it, dropped) : it + 1;
  }

  static list::iterator drop(list& l, list::iterator it, list& dropped) {
    if ((*it)->owned())
      (*it)->retire();
    dropped.push_back(std::move(*it));
    return l.erase(it);
  }

  // A forked child inherits the lists but owns none of the references they count.
  void forget_after_fork(list& dropped) {
    if (pid_ == ::getpid())
      return;
    for (auto* l : {&owned_, &received_}) {
      std::move(l->begin(), l->end(), std::back_inserter(dropped));
      l->clear();
    }
    pid_ = ::getpid();
  }

  std::mutex mutex_;
  pid_t pid_ = ::getpid();
  list owned_;
  list received_;
};

bool segments_available() {
  static const bool available = ::sysconf(_SC_PAGESIZE) == static_cast<long>(page);
  return available;
}

std::shared_ptr<blob_segment> take_segment(std::size_t size) {
  return segment_pool::instance().take(size);
}

std::shared_ptr<blob_segment> received_segment(int fd, std::string& why) {
  return segment_pool::instance().received(fd, why);
}

void close_unclaimed(int fd) {
  segment_pool::instance().give_back(fd);
  ::close(fd);
}

} // namespace mproc::detail
