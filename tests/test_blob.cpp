// mproc::blob: a large one reaches a local process as a descriptor (beyond any frame limit),
// a small one inside the frame; both arrive equal; what the receiver maps cannot change;
// a descriptor that is not a sealed blob is refused; nothing is left open.
#include "mproc/runtime/blob.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <sstream>

#include <caf/event_based_actor.hpp>

#include <catch2/catch.hpp>

#include "mproc/runtime/actor_registry.hpp"
#include "mproc/runtime/node.hpp"
#include "support.hpp"

using namespace std::chrono_literals;

namespace {

std::uint64_t digest(std::string_view data) {
  std::uint64_t h = 0xcbf29ce484222325u;
  for (unsigned char c : data)
    h = (h ^ c) * 0x100000001b3u;
  return h;
}

mproc::blob pattern(std::size_t size) {
  mproc::blob_writer w{size};
  for (std::size_t i = 0; i < size; ++i)
    w.data()[i] = static_cast<char>(i * 7 + i / 4096);
  return std::move(w).finish();
}

// KiB of blob memory (memfd mappings) this process has mapped in: its page table entries.
std::size_t blob_kib_mapped_in() {
  std::ifstream smaps{"/proc/self/smaps"};
  std::string line;
  bool in_blob = false;
  std::size_t kib = 0;
  while (std::getline(smaps, line)) {
    auto range = line.substr(0, line.find(' '));
    if (range.find_first_not_of("0123456789abcdef-") == std::string::npos)
      in_blob = line.find("mproc-blob") != std::string::npos;  // a mapping's first line
    else if (in_blob && line.rfind("Rss:", 0) == 0)
      kib += std::stoul(line.substr(4));
  }
  return kib;
}

// Answers a blob with [its digest, whether it arrived in shared memory]; "echo" sends it back.
caf::behavior blob_reader(caf::event_based_actor*) {
  return {
    [](const mproc::blob& b) {
      return std::vector<std::uint64_t>{digest(b.view()), b.shared() ? 1u : 0u, b.size()};
    },
    [](const std::string&, const mproc::blob& b) { return b; },
  };
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

} // namespace

MPROC_ACTOR(blob_reader);
MPROC_ACTOR(fd_starved);

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

TEST_CASE("a finished blob is read-only, in its writer's process too") {
  auto b = pattern(mproc::blob::shared_min);
  // The blob's memfd is sealed against writing: mapping it writable is refused, so no
  // holder can change what receivers map.
  int found = 0;
  for (int fd = 0; fd < 1024; ++fd) {
    int seals = ::fcntl(fd, F_GET_SEALS);
    if (seals < 0 || (seals & F_SEAL_WRITE) == 0)
      continue;
    ++found;
    void* p = ::mmap(nullptr, b.size(), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    CHECK(p == MAP_FAILED);
    if (p != MAP_FAILED)
      ::munmap(p, b.size());
  }
  CHECK(found >= 1);
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
  auto before = blob_kib_mapped_in();
  auto b = pattern(size);
  std::vector<int> fds;
  mproc::wire::codec_state st;
  st.descriptors = &fds;
  mproc::wire::buffer buf;
  mproc::wire::packer pk{buf};
  mproc::wire::codec<mproc::blob>::encode(pk, b, st);
  REQUIRE(fds.size() == 1);
  auto handle = msgpack::unpack(buf.data(), buf.size());
  mproc::blob out;
  REQUIRE(mproc::wire::codec<mproc::blob>::decode(handle.get(), out, st));
  // Received (on the I/O loop) costs no page of it: a receiver may only send it on.
  CHECK(blob_kib_mapped_in() == before);
  CHECK(out.data()[4096 * 100] == b.data()[4096 * 100]);
  // One byte read, the whole blob mapped in (the sender's mapping, read above, too).
  CHECK(blob_kib_mapped_in() == before + 2 * size / 1024);
}

TEST_CASE("a descriptor that is not a sealed blob is refused and closed") {
  auto before = test::entries("/proc/self/fd");
  int fd = ::memfd_create("not-a-blob", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  REQUIRE(fd >= 0);
  REQUIRE(::ftruncate(fd, 4096) == 0);
  std::vector<int> fds{fd};
  mproc::wire::codec_state st;
  st.descriptors = &fds;
  mproc::wire::buffer buf;
  mproc::wire::packer pk{buf};
  pk.pack_array(2);
  pk.pack(0);
  pk.pack(4096);
  auto handle = msgpack::unpack(buf.data(), buf.size());
  mproc::blob out;
  CHECK_FALSE(mproc::wire::codec<mproc::blob>::decode(handle.get(), out, st));
  CHECK(st.error.find("not a sealed blob") != std::string::npos);
  CHECK(fds[0] == -1);  // taken, and closed
  CHECK(test::entries("/proc/self/fd") == before);
}

TEST_CASE("blobs close their descriptors when the last copy goes") {
  auto before = test::entries("/proc/self/fd");
  {
    auto a = pattern(mproc::blob::shared_min);
    auto copy = a;
    auto b = pattern(std::size_t{2} << 20);
    CHECK(test::entries("/proc/self/fd") == before + 2);
  }
  CHECK(test::entries("/proc/self/fd") == before);
  mproc::blob_writer w{mproc::blob::shared_min};
  auto done = std::move(w).finish();
  CHECK(w.data() == nullptr);
  CHECK(std::move(w).finish().empty());
}
