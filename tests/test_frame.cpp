#include "mproc/serialization/frame.hpp"

#include <atomic>
#include <cstdlib>
#include <new>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

// Records the largest single allocation, to prove that a huge length header is refused
// before anything is reserved for its payload.
static std::atomic<std::size_t> largest_allocation{0};
// And counts the allocations above the size a decoder keeps as it is.
static std::atomic<int> large_allocations{0};

// Every form is replaced, so that all allocations and frees pair up in malloc/free.
static void* counted_malloc(std::size_t n) noexcept {
  auto seen = largest_allocation.load();
  while (n > seen && !largest_allocation.compare_exchange_weak(seen, n)) {}
  if (n > mproc::wire::frame_decoder::keep_capacity)
    ++large_allocations;
  return std::malloc(n ? n : 1);
}
void* operator new(std::size_t n) {
  if (void* p = counted_malloc(n))
    return p;
  throw std::bad_alloc{};
}
void* operator new[](std::size_t n) { return operator new(n); }
void* operator new(std::size_t n, const std::nothrow_t&) noexcept { return counted_malloc(n); }
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept { return counted_malloc(n); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }

using mproc::wire::frame_decoder;

namespace {

std::string frame(const std::string& payload) {
  std::string out(4, '\0');
  mproc::wire::put_frame_length(out.data(), static_cast<std::uint32_t>(payload.size()));
  return out + payload;
}

std::vector<std::string> feed_all(frame_decoder& d, const std::string& bytes, std::size_t step) {
  std::vector<std::string> frames;
  for (std::size_t i = 0; i < bytes.size(); i += step)
    d.feed(bytes.data() + i, std::min(step, bytes.size() - i),
           [&](std::string_view p) { frames.emplace_back(p); });
  return frames;
}

} // namespace

TEST_CASE("frame length is four bytes, big-endian") {
  char out[4];
  mproc::wire::put_frame_length(out, 0x01020304);
  CHECK(out[0] == 1);
  CHECK(out[3] == 4);
  CHECK(mproc::wire::get_frame_length(out) == 0x01020304);
  mproc::wire::put_frame_length(out, 0xFFFFFFFF);
  CHECK(mproc::wire::get_frame_length(out) == 0xFFFFFFFF);
}

TEST_CASE("a stream split at every byte offset yields the same frames") {
  std::vector<std::string> payloads = {"a", "", std::string(300, 'x'), "hello", std::string(70000, 'y')};
  std::string stream;
  for (auto& p : payloads)
    stream += frame(p);
  for (std::size_t split = 1; split < stream.size(); split += (split < 600 ? 1 : 997)) {
    frame_decoder d;
    std::vector<std::string> got;
    auto sink = [&](std::string_view p) { got.emplace_back(p); };
    REQUIRE(d.feed(stream.data(), split, sink));
    REQUIRE(d.feed(stream.data() + split, stream.size() - split, sink));
    REQUIRE(got == payloads);
    CHECK(d.pending_payload() == 0);
  }
}

TEST_CASE("byte-by-byte feeding yields the same frames") {
  std::string stream = frame("one") + frame("") + frame("three");
  frame_decoder d;
  CHECK(feed_all(d, stream, 1) == std::vector<std::string>{"one", "", "three"});
}

TEST_CASE("a feed stopped at a frame leaves the bytes after it unconsumed, wherever the stream was split") {
  // "stop" says the stream goes on elsewhere: what follows it is not this decoder's.
  std::string stream = frame("a") + frame("stop") + frame("") + frame("after");
  auto stop_end = frame("a").size() + frame("stop").size();
  for (std::size_t split = 1; split < stream.size(); ++split) {
    frame_decoder d;
    std::vector<std::string> got;
    std::size_t consumed = 0;
    auto sink = [&](std::string_view p) {
      got.emplace_back(p);
      if (p == "stop")
        d.stop_after_frame();
    };
    for (auto [at, n] : {std::pair{std::size_t{0}, split}, std::pair{split, stream.size() - split}}) {
      if (!got.empty() && got.back() == "stop")
        break;
      REQUIRE(d.feed(stream.data() + at, n, sink));
      consumed = at + n - d.unconsumed();
    }
    REQUIRE(got == std::vector<std::string>{"a", "stop"});
    CHECK(consumed == stop_end);
    CHECK(d.pending_payload() == 0);
  }
}

TEST_CASE("a 4 GiB length header is rejected without allocating") {
  frame_decoder d{64u << 20};
  largest_allocation = 0;
  const char header[4] = {'\xFF', '\xFF', '\xFF', '\xFF'};
  bool called = false;
  CHECK_FALSE(d.feed(header, 4, [&](std::string_view) { called = true; }));
  CHECK(largest_allocation.load() < (1u << 20));
  CHECK_FALSE(called);
  CHECK(d.failed());
  CHECK(d.error().find("exceeds the limit") != std::string::npos);
}

TEST_CASE("a length one above the maximum is rejected, the maximum itself is accepted") {
  frame_decoder over{16};
  std::string big = frame(std::string(17, 'z'));
  CHECK_FALSE(over.feed(big.data(), big.size(), [](std::string_view) {}));
  frame_decoder exact{16};
  std::string ok = frame(std::string(16, 'z'));
  int frames = 0;
  CHECK(exact.feed(ok.data(), ok.size(), [&](std::string_view p) { frames += p.size() == 16; }));
  CHECK(frames == 1);
}

TEST_CASE("after an error the decoder stays failed") {
  frame_decoder d{4};
  std::string bad = frame("too long");
  CHECK_FALSE(d.feed(bad.data(), bad.size(), [](std::string_view) {}));
  std::string good = frame("ok");
  bool called = false;
  CHECK_FALSE(d.feed(good.data(), good.size(), [&](std::string_view) { called = true; }));
  CHECK_FALSE(called);
}

TEST_CASE("the rest of a frame received straight into payload_room arrives whole, then feeding goes on") {
  frame_decoder d;
  std::string payload(300'000, '\0');
  for (std::size_t i = 0; i < payload.size(); ++i)
    payload[i] = static_cast<char>(i * 7);
  std::string stream = frame(payload) + frame("next");
  std::vector<std::string> got;
  auto collect = [&](std::string_view p) { got.emplace_back(p); };
  REQUIRE(d.feed(stream.data(), 1000, collect));  // header and the first bytes
  std::size_t at = 1000;
  while (d.pending_payload() > 0) {
    auto n = std::min<std::size_t>(d.pending_payload(), 65'536);  // as recv would: in parts
    std::copy_n(stream.data() + at, n, d.payload_room());
    d.commit(n, collect);
    at += n;
  }
  REQUIRE(got.size() == 1);
  CHECK(got[0] == payload);
  REQUIRE(d.feed(stream.data() + at, stream.size() - at, collect));
  REQUIRE(got.size() == 2);
  CHECK(got[1] == "next");
}

TEST_CASE("a large frame's buffer is reused by the next large frame, its content intact") {
  frame_decoder d;
  const std::size_t size = frame_decoder::keep_capacity + 4096;  // above the plain keep size
  std::vector<std::string> streams{frame(std::string(size, 'a')), frame(std::string(size, 'b'))};
  std::vector<std::string> got;  // each frame's size and first and last byte: no large copy
  auto collect = [&](std::string_view p) {
    got.push_back(std::to_string(p.size()) + p.front() + p.back());
  };
  auto allocations_before = large_allocations.load();
  for (const auto& stream : streams) {
    REQUIRE(d.feed(stream.data(), 16, collect));  // the header and a few bytes
    std::copy_n(stream.data() + 16, d.pending_payload(), d.payload_room());
    d.commit(d.pending_payload(), collect);
  }
  CHECK(large_allocations - allocations_before == 1);  // no fresh pages for the second
  REQUIRE(got.size() == 2);
  CHECK(got[0] == std::to_string(size) + "aa");
  CHECK(got[1] == std::to_string(size) + "bb");  // released pages read back what was written
}
