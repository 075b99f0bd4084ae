// A blob's shared memory (runtime/internal/blob_segment.hpp, blob_pool.hpp): written again
// only once nobody holds it, in any process, a frame in flight included; read by a receiver
// through the mapping it already has; what a process keeps open is bounded and goes back
// after a while unused. The blob as a value: test_blob.cpp.
#include "mproc/runtime/internal/blob_pool.hpp"

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <functional>
#include <set>
#include <thread>

#include <caf/stateful_actor.hpp>

#include <catch2/catch.hpp>

#include "blob_support.hpp"
#include "mproc/runtime/blocking.hpp"

namespace {

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

MPROC_ACTOR(late_replier);
MPROC_ACTOR(blob_idler);


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

TEST_CASE("a refused segment's reference goes back: a claim beyond it, or sent as a plain blob") {
  struct refusal {
    std::size_t size;  // sizes no other test makes
    bool more_than_it_holds;
    const char* words;
  };
  auto r = GENERATE(refusal{mproc::blob::shared_min + 12345, true, "in a segment of"},
                    refusal{mproc::blob::shared_min + 23456, false, "not a sealed blob"});
  auto b = pattern(r.size);
  encoded frame{b};
  REQUIRE(frame.fds.size() == 1);
  const char* where = b.data();
  auto claimed = r.more_than_it_holds ? std::uint64_t{1} << 40 : std::uint64_t{r.size};
  // As a segment claiming too much, or in the two-element form of a plain blob.
  CHECK_THAT(refusal_of(std::exchange(frame.fds[0], -1), claimed, r.more_than_it_holds),
             Catch::Contains(r.words));
  CHECK(b == pattern(r.size));
  b = mproc::blob{};  // the refused frame's reference went back: nobody holds it now
  CHECK(written_again(where, r.size));
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
