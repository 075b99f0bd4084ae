// The shared-memory ring pair under a link (ring.hpp): bytes, wake-ups, and what a hostile
// other side can and cannot do to the reader.
#include "mproc/runtime/internal/ring.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <numeric>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

using mproc::detail::ring_header;
using mproc::detail::ring_mapping;

namespace {

// Both sides of one mapping in this process: `made` writes what `mapped` reads.
struct both_sides {
  std::unique_ptr<ring_mapping> made = ring_mapping::create();
  std::unique_ptr<ring_mapping> mapped =
    ring_mapping::map(::fcntl(made->memfd(), F_DUPFD_CLOEXEC, 0));
};

std::string take(mproc::detail::ring_reader& r, std::size_t n) {
  std::string out(n, '\0');
  auto got = r.get(out.data(), n);
  out.resize(got.n);
  return out;
}

} // namespace

TEST_CASE("bytes put and published come out whole and in order, across the ring's end") {
  both_sides s;
  REQUIRE(s.mapped);
  auto w = s.made->writer();
  auto r = s.mapped->reader();
  constexpr auto size = ring_mapping::ring_size;
  std::string first(size - 10, 'a');  // the next write wraps around the end
  REQUIRE(w.put(first.data(), first.size()) == first.size());
  w.publish();
  CHECK(take(r, size) == first);
  std::string second(100, '\0');
  std::iota(second.begin(), second.end(), 'A');
  REQUIRE(w.put(second.data(), second.size()) == second.size());
  CHECK(take(r, size).empty());  // not published yet
  w.publish();
  CHECK(take(r, size) == second);
}

TEST_CASE("a writer puts only what fits, and waits for the read that makes room") {
  both_sides s;
  auto w = s.made->writer();
  auto r = s.mapped->reader();
  constexpr auto size = ring_mapping::ring_size;
  std::string lot(size + 1000, 'x');
  CHECK(w.put(lot.data(), lot.size()) == size);
  w.publish();
  CHECK(w.unread() == size);
  REQUIRE(w.wait_for_room());  // full: it waits
  auto got = r.get(lot.data(), 10);
  CHECK(got.n == 10);
  CHECK(got.wake_writer);  // and the read that made room says so, once
  CHECK_FALSE(r.get(lot.data(), 10).wake_writer);
  CHECK_FALSE(w.wait_for_room());  // room now: no wait
  CHECK(w.put(lot.data(), 1000) == 20);
}

TEST_CASE("a reader that went idle is woken by the next publish, and only by that one") {
  both_sides s;
  auto w = s.made->writer();
  auto r = s.mapped->reader();
  char c = 'c';
  w.put(&c, 1);
  CHECK(w.publish());  // nobody read yet: idle from the start
  w.put(&c, 1);
  CHECK_FALSE(w.publish());  // the wake-up is on its way
  CHECK_FALSE(r.go_idle());  // two bytes wait: it may not sleep
  CHECK(take(r, 10) == "cc");
  REQUIRE(r.go_idle());
  CHECK_FALSE(w.publish());  // nothing new: no wake-up
  w.put(&c, 1);
  CHECK(w.publish());
}

TEST_CASE("an impossible position from the other side is reported, and nothing is read") {
  both_sides s;
  auto r = s.mapped->reader();
  // The writer's header is the mapping's first page, as the other process sees it.
  void* mem = ::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, s.made->memfd(), 0);
  REQUIRE(mem != MAP_FAILED);
  static_cast<ring_header*>(mem)->head.store(std::uint64_t{1} << 40);
  char buf[64];
  auto got = r.get(buf, sizeof buf);
  CHECK(got.broken);
  CHECK(got.n == 0);
  ::munmap(mem, 4096);
}

TEST_CASE("a memfd of another size or that can still shrink is not mapped") {
  int small = ::memfd_create("not-a-ring", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  REQUIRE(::ftruncate(small, 4096) == 0);
  REQUIRE(::fcntl(small, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) == 0);
  CHECK(ring_mapping::map(small) == nullptr);
  both_sides s;
  int unsealed = ::memfd_create("not-a-ring", MFD_CLOEXEC);
  struct stat st{};
  REQUIRE(::fstat(s.made->memfd(), &st) == 0);
  REQUIRE(::ftruncate(unsealed, st.st_size) == 0);
  CHECK(ring_mapping::map(unsealed) == nullptr);
}
