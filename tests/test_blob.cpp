// mproc::blob: a large one reaches a local process as a descriptor (beyond any frame limit),
// a small one inside the frame; both arrive equal; receivers cannot change what they map;
// shared memory is reused only once nobody holds it, and a receiver maps it once; a
// descriptor that is not a blob is refused; what is kept open is bounded.
#include "mproc/runtime/blob.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstring>
#include <fstream>
#include <functional>
#include <set>
#include <thread>
#include <sstream>

#include <caf/event_based_actor.hpp>
#include <caf/stateful_actor.hpp>

#include <catch2/catch.hpp>

#include "mproc/runtime/actor_registry.hpp"
#include "mproc/runtime/blocking.hpp"
#include "mproc/runtime/internal/blob_pool.hpp"
#include "mproc/runtime/internal/blob_segment.hpp"
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

mproc::blob pattern_b(std::size_t size) {
  mproc::blob_writer w{size};
  for (std::size_t i = 0; i < size; ++i)
    w.data()[i] = static_cast<char>(i * 13 + 5);
  return std::move(w).finish();
}

// Whether a new blob of `size` bytes is written where `where` was: the pool hands out the
// segments nobody holds, smallest first, before it makes new ones, so one of these blobs
// lands there if that segment is free and at most three others of its size are.
bool written_again(const char* where, std::size_t size) {
  std::vector<mproc::blob> held;
  for (int i = 0; i < 4; ++i) {
    held.push_back(pattern_b(size));
    if (held.back().data() == where)
      return true;
  }
  return false;
}

// KiB of blob memory (memfd mappings) this process has mapped in (its page table entries),
// and how many such mappings it has.
std::pair<std::uint64_t, std::uint64_t> blob_mappings() {
  std::ifstream smaps{"/proc/self/smaps"};
  std::string line;
  bool in_blob = false;
  std::uint64_t kib = 0;
  std::uint64_t count = 0;
  while (std::getline(smaps, line)) {
    auto range = line.substr(0, line.find(' '));
    if (range.find_first_not_of("0123456789abcdef-") == std::string::npos) {
      in_blob = line.find("mproc-blob") != std::string::npos;  // a mapping's first line
      count += in_blob ? 1 : 0;
    } else if (in_blob && line.rfind("Rss:", 0) == 0) {
      kib += std::stoul(line.substr(4));
    }
  }
  return {kib, count};
}

// The inode numbers of the blob segments and memfds this process has open.
std::set<ino_t> blob_files() {
  std::set<ino_t> found;
  for (int fd = 0; fd < 4096; ++fd) {
    char target[256] = {};
    auto path = "/proc/self/fd/" + std::to_string(fd);
    struct stat st{};
    if (::readlink(path.c_str(), target, sizeof target - 1) > 0
        && std::string_view{target}.starts_with("/memfd:mproc-blob") && ::fstat(fd, &st) == 0)
      found.insert(st.st_ino);
  }
  return found;
}

// Holds the blobs it gets until told "drop", and answers each with [its digest, this
// process's blob mappings (KiB mapped in, count) before and after the digest is taken];
// "digest" answers the digest of the held blob.
caf::behavior blob_keeper(caf::event_based_actor*) {
  static std::vector<mproc::blob> kept;
  return {
    [](const mproc::blob& b) {
      auto before = blob_mappings();
      auto d = digest(b.view());
      auto after = blob_mappings();
      kept.push_back(b);
      return std::vector<std::uint64_t>{d, before.first, before.second, after.first,
                                        after.second};
    },
    [](const std::string& what) {
      std::uint64_t d = kept.empty() ? 0 : digest(kept.back().view());
      if (what == "drop")
        kept.clear();
      return d;
    },
  };
}

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

// Answers an i32 N with a blob of N bytes only when told "reply"; "check" drops its own copy
// and answers whether a new blob of that size is written where that one was.
struct late_state {
  caf::response_promise pending;
  mproc::blob kept;
  const char* where = nullptr;
};

caf::behavior late_replier(caf::stateful_actor<late_state>* self) {
  return {
    [=](std::int32_t size) {
      self->state.kept = pattern(static_cast<std::size_t>(size));
      self->state.where = self->state.kept.data();
      self->state.pending = self->make_response_promise();
      return self->state.pending;
    },
    [=](const std::string& what) {
      if (what == "reply") {
        self->state.pending.deliver(self->state.kept);
        return true;
      }
      auto size = self->state.kept.size();
      self->state.kept = mproc::blob{};
      return written_again(self->state.where, size);
    },
  };
}

// Whether this process lets go of all its blob memory within 10 s.
bool all_blob_memory_goes() {
  mproc::will_block();
  auto until = std::chrono::steady_clock::now() + 10s;
  while (!blob_files().empty() && std::chrono::steady_clock::now() < until)
    std::this_thread::sleep_for(20ms);
  return blob_files().empty();
}

// Takes a blob (and lets go of it once answered); "wait" then makes a blob of its own, drops
// it, and answers whether all blob memory goes; "lost" makes one whose count a lost frame
// leaves too high, and answers the same.
caf::behavior blob_idler(caf::event_based_actor*) {
  return {
    [](const mproc::blob& b) { return b.size() != 0 && !blob_files().empty(); },
    [](const std::string& what) {
      auto b = pattern(std::size_t{1} << 20);
      bool made = b.shared();
      if (what == "lost") {
        std::vector<int> fds;
        mproc::wire::codec_state st;
        st.descriptors = &fds;
        mproc::wire::buffer buf;
        mproc::wire::packer pk{buf};
        mproc::wire::codec<mproc::blob>::encode(pk, b, st);  // counts the frame
        for (int fd : fds)
          ::close(fd);  // which never reaches anyone
      }
      b = mproc::blob{};
      return made && all_blob_memory_goes();
    },
  };
}

MPROC_ACTOR(blob_reader);
MPROC_ACTOR(late_replier);
MPROC_ACTOR(blob_idler);
MPROC_ACTOR(fd_starved);
MPROC_ACTOR(blob_keeper);
MPROC_ACTOR(blob_scribbler);

// A node and one child running `actor`, which ends with the test.
struct node_and_child {
  test::scoped_node node;
  mproc::process child;
  explicit node_and_child(const char* actor) : child{node->spawn_process(actor, {})} {}
  ~node_and_child() {
    child.terminate();
    child.join(10s);
  }
};

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

TEST_CASE("shared memory nobody holds is written again, and a receiver reads it through the same mapping") {
  constexpr std::size_t size = std::size_t{2} << 20;
  node_and_child t{"blob_keeper"};
  auto& node = t.node;
  auto& child = t.child;
  // Reckoned before: a blob made inside a check would take a segment in the middle of it.
  const auto digest_a = digest(pattern(size).view());
  const auto digest_b = digest(pattern_b(size).view());
  auto a = pattern(size);
  const char* where = a.data();
  auto first = node->request<std::vector<std::uint64_t>>(child.actor(), 30s, a);
  REQUIRE(first.size() == 5);
  CHECK(first[0] == digest_a);
  // The child holds it: a new blob goes elsewhere, and the child's copy does not change.
  a = mproc::blob{};
  auto b = pattern_b(size);
  CHECK(b.data() != where);
  CHECK(node->request<std::uint64_t>(child.actor(), 10s, std::string{"digest"}) == digest_a);
  // Nobody holds it any more: the next blob of its size is written into it.
  REQUIRE(node->request<std::uint64_t>(child.actor(), 10s, std::string{"drop"}) != 0);
  auto c = pattern_b(size);
  CHECK(c.data() == where);
  auto again = node->request<std::vector<std::uint64_t>>(child.actor(), 30s, c);
  REQUIRE(again.size() == 5);
  CHECK(again[0] == digest_b);
  // The child already had that segment mapped: no new mapping, nothing new mapped in.
  CHECK(again[2] == first[4]);
  CHECK(again[4] == again[2]);
  CHECK(again[3] == again[1]);
}

// Encodes `b` as for a local link: the frame's descriptors and settle steps.
struct encoded {
  std::vector<int> fds;
  std::vector<std::function<void(bool)>> settle;
  mproc::wire::buffer buf;
  explicit encoded(const mproc::blob& b) {
    mproc::wire::codec_state st;
    st.descriptors = &fds;
    st.settle = &settle;
    mproc::wire::packer pk{buf};
    mproc::wire::codec<mproc::blob>::encode(pk, b, st);
  }
  ~encoded() {
    for (int fd : fds)
      if (fd >= 0)
        ::close(fd);
  }
};

// [0, size] or [0, size, true] decoded with `fd` as the frame's one descriptor.
struct decoded {
  bool ok = false;
  bool taken = false;  // the descriptor: kept by the blob, or closed
  mproc::blob out;
  std::string error;
  decoded(int fd, std::uint64_t size, bool segment) {
    std::vector<int> fds{fd};
    mproc::wire::codec_state st;
    st.descriptors = &fds;
    mproc::wire::buffer buf;
    mproc::wire::packer pk{buf};
    pk.pack_array(segment ? 3 : 2);
    pk.pack(0);
    pk.pack(size);
    if (segment)
      pk.pack(true);
    auto handle = msgpack::unpack(buf.data(), buf.size());
    ok = mproc::wire::codec<mproc::blob>::decode(handle.get(), out, st);
    taken = fds[0] == -1;
    error = st.error;
  }
};

std::string refusal_of(int fd, std::uint64_t size, bool segment) {
  decoded d{fd, size, segment};
  CHECK_FALSE(d.ok);
  CHECK(d.taken);  // and closed
  return d.error;
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

TEST_CASE("a segment said to hold more than it can is refused") {
  constexpr std::size_t size = mproc::blob::shared_min + 12345;  // a size no other test makes
  auto b = pattern(size);
  encoded frame{b};
  REQUIRE(frame.fds.size() == 1);
  const char* where = b.data();
  CHECK_THAT(refusal_of(std::exchange(frame.fds[0], -1), std::uint64_t{1} << 40, true),
             Catch::Contains("in a segment of"));
  CHECK(b == pattern(size));
  b = mproc::blob{};  // the refused frame's reference went back: nobody holds it now
  CHECK(written_again(where, size));
}

TEST_CASE("a process keeps a bounded number of descriptors for blobs nobody holds") {
  {
    std::vector<mproc::blob> held;
    for (int i = 0; i < 100; ++i)
      held.push_back(pattern(mproc::blob::shared_min));
    CHECK(blob_files().size() >= 100);  // one segment each
  }
  auto kept = blob_files();
  CHECK(kept.size() <= 64);  // the pool's segments, for blobs to come
  for (int i = 0; i < 100; ++i)
    CHECK(pattern(mproc::blob::shared_min).size() == mproc::blob::shared_min);
  // Each blob went into a segment the pool had (which may let go of idle ones meanwhile).
  auto after = blob_files();
  CHECK(std::includes(kept.begin(), kept.end(), after.begin(), after.end()));
  mproc::blob_writer w{mproc::blob::shared_min};
  auto done = std::move(w).finish();
  CHECK(w.data() == nullptr);
  CHECK(std::move(w).finish().empty());
}

// A blob of `size` bytes whose last holder is a frame encoded for a local link is not written
// again before `end` ends the frame, and after it only if `freed`.
void check_frame_hold(std::size_t size, const std::function<void(encoded&)>& end, bool freed) {
  auto b = pattern(size);
  const char* where = b.data();
  encoded frame{b};
  REQUIRE(frame.fds.size() == 1);
  b = mproc::blob{};
  CHECK(pattern_b(size).data() != where);  // the frame counts as a holder
  end(frame);
  CHECK(written_again(where, size) == freed);
}

TEST_CASE("a frame that failed to go out still counts as a holder of its blob's memory") {
  // A write that fails part way may have handed the descriptor over with its first bytes:
  // only a receiver gives the frame's reference back, never the sender.
  check_frame_hold(std::size_t{3} << 20, [](encoded& frame) {
    for (auto& step : frame.settle)
      step(false);
    ::close(std::exchange(frame.fds[0], -1));
  }, false);
}

TEST_CASE("a descriptor no value took gives its blob's memory back") {
  check_frame_hold(std::size_t{5} << 20, [](encoded& frame) {
    mproc::detail::close_unclaimed(std::exchange(frame.fds[0], -1));  // a reply that came late
  }, true);
}

TEST_CASE("a descriptor no value took gives its blob's memory back from a process that never mapped it") {
  check_frame_hold(std::size_t{9} << 20, [](encoded& frame) {
    // A forked copy knows none of this process's segments: it goes through the header.
    pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      mproc::detail::close_unclaimed(frame.fds[0]);
      ::_exit(0);
    }
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    REQUIRE((WIFEXITED(status) && WEXITSTATUS(status) == 0));
  }, true);
}

TEST_CASE("a blob in a reply that came too late is written again by its sender") {
  constexpr std::int32_t size = 7 << 20;
  node_and_child t{"late_replier"};
  auto& node = t.node;
  auto& child = t.child;
  CHECK(test::code_of([&] { node->request<mproc::blob>(child.actor(), 200ms, size); })
        == mproc::errc::timeout);
  // The reply goes out before the answer to "reply", on the same link: the node has dropped
  // it (nobody waits for it any more) by the time that answer arrives.
  REQUIRE(node->request<bool>(child.actor(), 10s, std::string{"reply"}));
  CHECK(node->request<bool>(child.actor(), 10s, std::string{"check"}));
}

TEST_CASE("a process lets go of blob memory nobody used for a while") {
  // This process reads the limit once, at its first blob: the default, whatever runs first.
  REQUIRE(pattern(mproc::blob::shared_min).shared());
  test::scoped_env idle{"MPROC_BLOB_IDLE_MS", "100"};  // children read it; 10 s by default
  node_and_child t{"blob_idler"};
  auto b = pattern(std::size_t{3} << 20);
  REQUIRE(t.node->request<bool>(t.child.actor(), 10s, b));  // a segment received, then unheld
  // A segment it made and one it received (whose owner still holds it) both go.
  CHECK(t.node->request<bool>(t.child.actor(), 30s, std::string{"wait"}));
  // So does one whose count stays too high (after six times the limit).
  CHECK(t.node->request<bool>(t.child.actor(), 30s, std::string{"lost"}));
}

TEST_CASE("a blob echoed back to its writer's process is written again once dropped") {
  constexpr std::size_t size = std::size_t{6} << 20;
  node_and_child t{"blob_reader"};
  auto& node = t.node;
  auto& child = t.child;
  auto b = pattern(size);
  const char* where = b.data();
  auto back = node->request<mproc::blob>(child.actor(), 30s, std::string{"echo"}, b);
  CHECK(back.data() == where);  // its own segment, through its own mapping
  // One more message: the child handles it after it has let go of the first and its reply.
  mproc::blob small{std::string_view{"after"}};
  REQUIRE(node->request<mproc::blob>(child.actor(), 10s, std::string{"echo"}, small) == small);
  b = mproc::blob{};
  CHECK(pattern_b(size).data() != where);  // the echo still holds it
  back = mproc::blob{};
  CHECK(written_again(where, size));
}
