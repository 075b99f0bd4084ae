// mproc::blob as a value: a large one reaches a local process as a descriptor (beyond any
// frame limit), a small one inside the frame; both arrive equal; receivers cannot change what
// they map, and map it in at their first read; a descriptor that is not a blob is refused.
// How its memory is reused and counted: test_blob_segments.cpp.
#include "mproc/runtime/blob.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include <csignal>
#include <string>
#include <vector>

#include <caf/event_based_actor.hpp>

#include <catch2/catch.hpp>

#include "blob_support.hpp"

namespace {

// Writes into a blob it received, which it maps read-only: the process dies of SIGSEGV
// (without a core file).
caf::behavior blob_scribbler(caf::event_based_actor*) {
  return {[](const mproc::blob& b) {
    rlimit none{0, 0};
    ::setrlimit(RLIMIT_CORE, &none);
    const_cast<volatile char*>(b.data())[0] = 'x';
    return true;
  }};
}

// "starve": no descriptor can be opened any more here (the limit at the highest one open,
// the holes below it filled); "feed": as before. A blob answers its size.
caf::behavior fd_starved(caf::event_based_actor*) {
  static std::vector<int> fillers;
  return {
    [](const std::string& what) {
      rlimit lim{};
      ::getrlimit(RLIMIT_NOFILE, &lim);
      if (what == "starve") {
        int highest = 0;
        for (int fd = 0; fd < 4096; ++fd)
          if (::fcntl(fd, F_GETFD) >= 0)
            highest = fd;
        lim.rlim_cur = static_cast<rlim_t>(highest) + 1;
        ::setrlimit(RLIMIT_NOFILE, &lim);
        for (int fd; (fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0;)
          fillers.push_back(fd);
      } else {
        for (int fd : fillers)
          ::close(fd);
        fillers.clear();
        lim.rlim_cur = lim.rlim_max;
        ::setrlimit(RLIMIT_NOFILE, &lim);
      }
      return true;
    },
    [](const mproc::blob& b) { return static_cast<std::uint64_t>(b.size()); },
  };
}

// Refuses a blob with an error that carries it back in its context.
caf::behavior blob_returner(caf::event_based_actor*) {
  return {[](const mproc::blob& b) -> caf::result<bool> {
    return caf::make_error(caf::sec::runtime_error, b);
  }};
}

} // namespace

MPROC_ACTOR(blob_returner);
MPROC_ACTOR(fd_starved);
MPROC_ACTOR(blob_scribbler);

TEST_CASE("a blob larger than any frame reaches a child as shared memory, unchanged") {
  test::scoped_node node;
  auto data = pattern(std::size_t{96} << 20);  // above the default max_frame of 80 MiB
  REQUIRE(data.shared());
  auto child = node->spawn_process("blob_reader", {});
  auto seen = node->request<std::vector<std::uint64_t>>(child.actor(), 60s, data);
  CHECK(seen == std::vector<std::uint64_t>{digest(data.view()), 1, data.size()});
  child.terminate();
  child.join(10s);
}

TEST_CASE("a small blob travels inside the frame and comes back equal") {
  test::scoped_node node;
  mproc::blob small{std::string_view{"not worth a descriptor"}};
  CHECK_FALSE(small.shared());
  auto child = node->spawn_process("blob_reader", {});
  auto seen = node->request<std::vector<std::uint64_t>>(child.actor(), 10s, small);
  CHECK(seen == std::vector<std::uint64_t>{digest(small.view()), 0, small.size()});
  auto back = node->request<mproc::blob>(child.actor(), 10s, std::string{"echo"}, small);
  CHECK(back == small);
  auto large = pattern(mproc::blob::shared_min);
  auto large_back = node->request<mproc::blob>(child.actor(), 10s, std::string{"echo"}, large);
  CHECK(large_back.shared());
  CHECK(large_back == large);
  child.terminate();
  child.join(10s);
}

TEST_CASE("a process out of descriptors loses the blob message, not its link") {
  test::scoped_node node;
  auto data = pattern(mproc::blob::shared_min);
  auto child = node->spawn_process("fd_starved", {});
  REQUIRE(node->request<bool>(child.actor(), 10s, std::string{"starve"}));
  CHECK(test::code_of([&] { node->request<std::uint64_t>(child.actor(), 10s, data); })
        == mproc::errc::bad_message);
  REQUIRE(node->request<bool>(child.actor(), 10s, std::string{"feed"}));
  CHECK(node->request<std::uint64_t>(child.actor(), 10s, data) == data.size());
  child.terminate();
  child.join(10s);
}

TEST_CASE("a blob's shared memory cannot be resized, and a receiver maps it read-only") {
  auto b = pattern(mproc::blob::shared_min);
  // No holder can shrink it under a reader (who would fault, SIGBUS) or grow it.
  int found = 0;
  for (int fd = 0; fd < 1024; ++fd) {
    int seals = ::fcntl(fd, F_GET_SEALS);
    if (seals < 0 || (seals & F_SEAL_SHRINK) == 0)
      continue;
    ++found;
    CHECK(::ftruncate(fd, 4096) != 0);
    CHECK((seals & (F_SEAL_GROW | F_SEAL_SEAL)) == (F_SEAL_GROW | F_SEAL_SEAL));
  }
  CHECK(found >= 1);
  test::scoped_node node;
  auto child = node->spawn_process("blob_scribbler", {});
  CHECK(test::code_of([&] { node->request<bool>(child.actor(), 10s, b); }) != mproc::errc::none);
  REQUIRE(child.join(10s));
  CHECK(child.exitcode() == -SIGSEGV);
  CHECK(b == pattern(mproc::blob::shared_min));
}

TEST_CASE("a blob without descriptors travels inside the frame") {
  auto b = pattern(std::size_t{1} << 20);
  mproc::wire::buffer buf;
  mproc::wire::packer pk{buf};
  mproc::wire::codec_state st;
  mproc::wire::codec<mproc::blob>::encode(pk, b, st);  // as to another machine
  REQUIRE(st.ok());
  auto handle = msgpack::unpack(buf.data(), buf.size());
  CHECK(handle.get().type == msgpack::type::BIN);
  mproc::blob out;
  REQUIRE(mproc::wire::codec<mproc::blob>::decode(handle.get(), out, st));
  CHECK(out == b);
}

// Whether this kernel populates a mapping on request (Linux 5.14).
bool kernel_populates() {
#ifdef MADV_POPULATE_READ
  void* p = ::mmap(nullptr, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  bool ok = p != MAP_FAILED && ::madvise(p, 4096, MADV_POPULATE_READ) == 0;
  if (p != MAP_FAILED)
    ::munmap(p, 4096);
  return ok;
#else
  return false;
#endif
}

TEST_CASE("a blob received as a descriptor is mapped in at its first read, all at once") {
  if (!kernel_populates()) {
    WARN("MADV_POPULATE_READ refused: a blob is faulted in as read");
    return;
  }
  // Larger than what one fault maps in (fault-around, a huge page).
  constexpr std::size_t size = std::size_t{8} << 20;
  node_and_child t{"blob_keeper"};
  auto& node = t.node;
  auto& child = t.child;
  auto b = pattern(size);
  auto seen = node->request<std::vector<std::uint64_t>>(child.actor(), 30s, b);
  REQUIRE(seen.size() == 5);
  CHECK(seen[0] == digest(b.view()));
  // Received (on the I/O loop), it cost no page of its bytes: a receiver may only send it
  // on. Read, it was mapped in whole (its first page, the segment's header, was before).
  CHECK(seen[1] <= 4);
  CHECK(seen[3] == seen[1] + size / 1024);
}

TEST_CASE("a descriptor that is not a blob is refused and closed") {
  auto before = test::entries("/proc/self/fd");
  auto memfd = [](unsigned seals) {
    int fd = ::memfd_create("not-a-blob", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    REQUIRE(fd >= 0);
    REQUIRE(::ftruncate(fd, 8192) == 0);
    REQUIRE(::fcntl(fd, F_ADD_SEALS, seals) == 0);
    return fd;
  };
  CHECK_THAT(refusal_of(memfd(0), 8192, false), Catch::Contains("not a sealed blob"));
  CHECK_THAT(refusal_of(memfd(0), 4096, true), Catch::Contains("not a blob segment sealed"));
  // Sealed as a segment is, but without a segment's header.
  CHECK_THAT(refusal_of(memfd(F_SEAL_SHRINK | F_SEAL_GROW), 4096, true),
             Catch::Contains("not a blob segment"));
  CHECK(test::entries("/proc/self/fd") == before);
}

TEST_CASE("a huge-page memfd is refused before it is mapped, as a blob or as a segment") {
  // Mapped, it would take huge pages that a segment's 4 KiB header unmapping cannot give back.
  constexpr std::size_t huge = 2u << 20;
  auto hugetlb = [&](unsigned seals) {
    int fd = ::memfd_create("huge", MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_HUGETLB);
    if (fd >= 0 && (::ftruncate(fd, huge) != 0 || ::fcntl(fd, F_ADD_SEALS, seals) != 0)) {
      ::close(fd);
      fd = -1;
    }
    return fd;
  };
  int probe = hugetlb(F_SEAL_SHRINK | F_SEAL_GROW);
  if (probe < 0) {
    WARN("no sealable huge-page memfds on this kernel: nothing to refuse");
    return;
  }
  ::close(probe);
  auto before = test::entries("/proc/self/fd");
  // Refused by what the file is, not by a mapping that failed (there may be no huge pages).
  CHECK_THAT(refusal_of(hugetlb(F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW), huge, false),
             Catch::Contains("not a sealed blob"));
  CHECK_THAT(refusal_of(hugetlb(F_SEAL_SHRINK | F_SEAL_GROW), huge - 4096, true),
             Catch::Contains("not a blob segment sealed"));
  CHECK(test::entries("/proc/self/fd") == before);
}

TEST_CASE("a memfd sealed against writing and resizing is taken as a blob") {
  // What a blob above the pool's bound travels as, and what another implementation may send.
  const std::string text(300000, 's');
  int fd = ::memfd_create("sealed", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  REQUIRE(fd >= 0);
  REQUIRE(::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()));
  REQUIRE(::fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW) == 0);
  decoded d{fd, text.size(), false};
  REQUIRE(d.ok);
  CHECK(d.taken);
  CHECK(d.out.shared());
  CHECK(d.out.view() == text);
}

TEST_CASE("a blob in an error's context comes back from a child as a blob") {
  test::scoped_node node;
  auto data = pattern(std::size_t{1} << 20);
  REQUIRE(data.shared());  // so it travels as a descriptor, in the error as in the request
  auto child = node->spawn_process("blob_returner", {});
  auto e = test::error_of([&] { node->request<bool>(child.actor(), 10s, data); });
  const auto& context = e.reason().context();
  REQUIRE(context.match_element<mproc::blob>(0));  // before: the error's text instead
  CHECK(digest(context.get_as<mproc::blob>(0).view()) == digest(data.view()));
  child.terminate();
  child.join(10s);
}
