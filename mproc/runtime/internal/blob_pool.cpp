#include "mproc/runtime/internal/blob_pool.hpp"

#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <condition_variable>
#include <cstring>
#include <iterator>
#include <mutex>
#include <thread>
#include <vector>

#include "mproc/runtime/log.hpp"
#include "mproc/runtime/internal/blob_segment.hpp"

namespace mproc::detail {

namespace {

std::size_t page_rounded(std::size_t size) {
  return (size + blob_segment::header_size - 1) / blob_segment::header_size
         * blob_segment::header_size;
}

// A segment unused (made here) or unheld (received) this long is let go of, so that memory
// a program no longer sends blobs from goes back to the kernel; long enough that a program
// sending now and then keeps its segments warm.
constexpr std::chrono::milliseconds default_idle_limit{10'000};
constexpr const char* idle_limit_env = "MPROC_BLOB_IDLE_MS";  // tests: shorter

std::chrono::milliseconds idle_limit_to_use() {
  const char* v = std::getenv(idle_limit_env);
  if (v == nullptr)
    return default_idle_limit;
  char* end = nullptr;
  errno = 0;
  long ms = std::strtol(v, &end, 10);
  if (errno != 0 || end == v || *end != '\0' || ms < 1 || ms > 3'600'000) {
    log::warn("$", idle_limit_env, " is not a number of milliseconds from 1 to 3600000: ",
              default_idle_limit.count(), " ms it is");
    return default_idle_limit;
  }
  return std::chrono::milliseconds{ms};
}

} // namespace

// This process's segments: the pool it made (bounded; reused once unused everywhere) and the
// segments it received (mappings kept while the bound allows, so that one received again is
// read through page table entries this process already has). Making, mapping and unmapping
// happen outside the lock: they take milliseconds, and the I/O loop decodes under it. A
// thread lets go of segments nobody used for the idle limit.
class segment_pool {
public:
  static segment_pool& instance() {
    static auto* pool = make();  // never destroyed: blobs may outlive static objects
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
      watch_locked();
    }
    return s;
  }

  std::shared_ptr<blob_segment> received(int fd, std::string& why) {
    struct stat st{};
    std::uint64_t id = 0;
    // The seals first: they take no I/O, and only memfds have them, so a file on a
    // filesystem that never answers a read (a peer's FUSE mount) is refused before pread.
    bool sealed = blob_segment::sealed_as_one(fd);
    if (!sealed || ::fstat(fd, &st) != 0 || !blob_segment::read_id(fd, id)) {
      why = sealed ? "the descriptor is not a blob segment"
                   : "the descriptor is not a blob segment sealed against resizing";
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
    watch_locked();
    return s;
  }

  void allow_trimming() {
    list dropped;
    std::lock_guard lock{mutex_};
    forget_after_fork(dropped);
    trim_allowed_ = true;
    if (!owned_.empty() || !received_.empty())
      watch_locked();
  }

  // A frame's reference to the segment behind `fd`, which no value took, given back.
  void give_back(int fd) {
    struct stat st{};
    std::uint64_t id = 0;
    if (!blob_segment::sealed_as_one(fd) || ::fstat(fd, &st) != 0
        || !blob_segment::read_id(fd, id))
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
  static constexpr int stuck_factor = 6;

  using list = std::vector<std::shared_ptr<blob_segment>>;

  // A plain fork() must not copy the lock held by another thread (the trimmer takes it every
  // half limit): fork waits for it, and both sides let it go.
  static segment_pool* make() {
    auto* pool = new segment_pool;
    ::pthread_atfork([] { instance().mutex_.lock(); }, [] { instance().mutex_.unlock(); },
                     [] { instance().mutex_.unlock(); });
    return pool;
  }

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

  // A segment in use moves to the back: the lists run from least to most recently used.
  static std::shared_ptr<blob_segment> used(list& l, list::iterator it) {
    std::rotate(it, it + 1, l.end());
    l.back()->idle_since_ = {};
    return l.back();
  }

  static std::shared_ptr<blob_segment> find(list& l, dev_t dev, ino_t ino, std::uint64_t id) {
    auto it = std::find_if(l.begin(), l.end(), [&](const auto& s) { return s->same(dev, ino, id); });
    return it == l.end() ? nullptr : used(l, it);
  }

  // The smallest unused segment that fits without wasting half of it, claimed.
  std::shared_ptr<blob_segment> reuse(std::size_t size) {
    auto best = owned_.end();
    for (auto it = owned_.begin(); it != owned_.end(); ++it)
      if ((*it)->capacity() >= size && (*it)->capacity() / 2 < size && (*it)->unused()
          && (best == owned_.end() || (*it)->capacity() < (*best)->capacity()))
        best = it;
    if (best == owned_.end() || !(*best)->claim())
      return nullptr;
    return used(owned_, best);
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

  // Starts the thread that lets go of idle segments, unless it runs or no node allowed it yet;
  // it ends when both lists are empty. Without it segments stay until the bounds push them
  // out.
  void watch_locked() {
    if (trimming_ || !trim_allowed_)
      return;
    try {
      std::thread{[this] { trim_loop(); }}.detach();
      trimming_ = true;
    } catch (...) {  // no thread to be had: the next segment tries again
    }
  }

  void trim_loop() {
    ::pthread_setname_np(::pthread_self(), "mproc-blobs");
    std::unique_lock lock{mutex_};
    for (bool more = true; more;) {
      tick_.wait_for(lock, std::max(idle_limit_ / 2, std::chrono::milliseconds{1}));
      list dropped;
      more = trim_locked(dropped);
      trimming_ = more;
      lock.unlock();
      dropped.clear();  // unmapped outside the lock
      lock.lock();
    }
  }

  // Lets go of the segments no blob of this process held for the idle limit: received ones
  // (retired ones at once), and made ones nobody holds anywhere. A made one that another
  // process still counts (held there, or a count left too high by a killed holder or a frame
  // that never went out) goes after stuck_factor times the limit: retired, it is never
  // written again, and its holders keep their own mappings.
  bool trim_locked(list& dropped) {
    auto now = std::chrono::steady_clock::now();
    auto idle_for = [&](const std::shared_ptr<blob_segment>& s) {
      if (!idle(s))
        s->idle_since_ = {};
      else if (s->idle_since_ == std::chrono::steady_clock::time_point{})
        s->idle_since_ = now;
      return idle(s) ? now - s->idle_since_ : std::chrono::steady_clock::duration{};
    };
    drop_if(owned_, dropped, [&](const auto& s) {
      auto t = idle_for(s);
      return t >= stuck_factor * idle_limit_ || (t >= idle_limit_ && s->unused());
    });
    drop_if(received_, dropped, [&](const auto& s) {
      return idle_for(s) >= idle_limit_ || (idle(s) && s->retired());
    });
    return !owned_.empty() || !received_.empty();
  }

  // A forked child inherits the lists but owns none of the references they count, and has
  // no trimming thread.
  void forget_after_fork(list& dropped) {
    if (pid_ == ::getpid())
      return;
    trimming_ = false;
    trim_allowed_ = false;
    for (auto* l : {&owned_, &received_}) {
      std::move(l->begin(), l->end(), std::back_inserter(dropped));
      l->clear();
    }
    pid_ = ::getpid();
  }

  std::mutex mutex_;
  std::condition_variable tick_;  // never notified: the trimmer's clock
  bool trimming_ = false;
  bool trim_allowed_ = false;
  const std::chrono::milliseconds idle_limit_ = idle_limit_to_use();
  pid_t pid_ = ::getpid();
  list owned_;
  list received_;
};

std::shared_ptr<blob_segment> take_segment(std::size_t size) {
  return segment_pool::instance().take(size);
}

std::shared_ptr<blob_segment> received_segment(int fd, std::string& why) {
  return segment_pool::instance().received(fd, why);
}

void allow_segment_trimming() { segment_pool::instance().allow_trimming(); }

void close_unclaimed(int fd) {
  segment_pool::instance().give_back(fd);
  ::close(fd);
}

} // namespace mproc::detail
