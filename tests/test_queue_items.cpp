// What a queue's items can be, and what happens to one that cannot cross: nested too deep,
// not decodable, larger than a batch, blobs, and one above the receiver's largest frame.
#include "mproc/actors/queue.hpp"
#include "mproc/actors/queue_protocol.hpp"

#include <algorithm>
#include <string>
#include <vector>

#include <caf/blocking_actor.hpp>

#include <catch2/catch.hpp>

#include "mproc/runtime/actor_registry.hpp"
#include "mproc/runtime/blob.hpp"
#include "mproc/runtime/node.hpp"
#include "support.hpp"

using namespace std::chrono_literals;
using mproc::errc;
using test::code_of;
using int_queue = mproc::queue<std::int32_t>;

// Puts back every blob it gets from `in`, reversed, on `out`: a blob inside a queue item
// travels as bin (no descriptors there) and still arrives whole.
void blob_reverser(caf::blocking_actor*, mproc::queue<mproc::blob> in,
                   mproc::queue<mproc::blob> out, std::int32_t n) {
  for (std::int32_t i = 0; i < n; ++i) {
    auto b = in.get(std::chrono::seconds{10});
    std::string text{b.view()};
    std::reverse(text.begin(), text.end());
    out.put(mproc::blob{text});
  }
}

// Puts `count` strings of `size` bytes on `q`.
void big_producer(caf::blocking_actor*, mproc::queue<std::string> q, std::int32_t count,
                  std::int32_t size) {
  for (std::int32_t i = 0; i < count; ++i)
    q.put(std::string(static_cast<std::size_t>(size), static_cast<char>('a' + i)));
}

// Gets `count` strings from `q` and reports each one's size and first byte on `out`.
void big_consumer(caf::blocking_actor*, mproc::queue<std::string> q, std::int32_t count,
                  int_queue out) {
  for (std::int32_t i = 0; i < count; ++i) {
    auto s = q.get(std::chrono::seconds{30});
    out.put(static_cast<std::int32_t>(s.size()) + s.front());
  }
}

// Puts "a", an item of `size` bytes, "c"; once that flushed, "d". Answers whether both
// flushes were accepted whole and no put threw.
void oversized_producer(caf::blocking_actor*, mproc::queue<std::string> q, std::int32_t size,
                        int_queue out) {
  bool ok = true;
  try {
    q.put("a");
    q.put(std::string(static_cast<std::size_t>(size), 'b'));
    q.put("c");
    q.flush(10s);
    q.put("d");
    ok = q.flush(10s);
  } catch (const mproc::error&) {
    ok = false;
  }
  out.put(ok ? 1 : 0);
}

MPROC_ACTOR(big_producer);
MPROC_ACTOR(big_consumer);
MPROC_ACTOR(blob_reverser);
MPROC_ACTOR(oversized_producer);

TEST_CASE("an item nested too deep is refused with bad_message, and the queue goes on") {
  test::scoped_node node;
  mproc::queue<std::vector<std::int32_t>> q{*node};
  mproc::bytes deep(50'000, static_cast<char>(0x91));  // [[[[...]]]], 50,000 levels
  deep.push_back(0);
  mproc::detail::item_batch batch;
  batch.append({deep.data(), deep.size()});
  batch.append(mproc::detail::encode_item(std::vector<std::int32_t>{7}).bytes());
  node->request(q.actor(), 10s, mproc::detail::q_put_atom::value, batch);
  CHECK(code_of([&] { q.get(10s); }) == errc::bad_message);
  CHECK(q.get(10s) == std::vector<std::int32_t>{7});
}

TEST_CASE("blobs, small and shared, cross a queue between processes whole") {
  test::scoped_node node;
  mproc::queue<mproc::blob> in{*node};
  mproc::queue<mproc::blob> out{*node};
  auto c = node->spawn_process("blob_reverser", {}, in, out, std::int32_t{2});
  std::string large(mproc::blob::shared_min + 17, 'x');
  large.front() = 'a';
  in.put(mproc::blob{std::string_view{"abc"}});
  in.put(mproc::blob{large});
  CHECK(out.get(10s).view() == "cba");
  auto back = out.get(10s);
  CHECK(back.shared());
  CHECK(back.size() == large.size());
  CHECK(back.view().back() == 'a');
  REQUIRE(c.join(10s));
  CHECK(c.exitcode() == 0);
}

TEST_CASE("large items, each under the frame limit, cross in batches that stay under it") {
  // Three 30 MiB items, all in the queue before the consumer asks for 512: one batch of
  // them would be 90 MiB, above the 80 MiB max_frame.
  test::scoped_node node;
  mproc::queue<std::string> q{*node};
  int_queue out{*node};
  constexpr std::int32_t size = 30 << 20;
  auto p = node->spawn_process("big_producer", {}, q, std::int32_t{3}, size);
  REQUIRE(p.join(60s));
  CHECK(p.exitcode() == 0);
  CHECK(q.qsize() == 3);
  auto c = node->spawn_process("big_consumer", {}, q, std::int32_t{3}, out);
  for (char first : {'a', 'b', 'c'})
    CHECK(out.get(60s) == size + first);
  REQUIRE(c.join(30s));
  CHECK(c.exitcode() == 0);
}

TEST_CASE("an item that cannot be decoded ends get_many's batch; the items after it stay") {
  test::scoped_node node;
  mproc::queue<std::int32_t> q{*node};
  mproc::detail::item_batch batch;
  batch.append(mproc::detail::encode_item(std::int32_t{7}).bytes());
  batch.append(std::string_view{"\xc1"});  // never used in msgpack
  batch.append(mproc::detail::encode_item(std::int32_t{8}).bytes());
  node->request(q.actor(), 10s, mproc::detail::q_put_atom::value, batch);
  CHECK(q.get_many(10, 10s) == std::vector<std::int32_t>{7});
  CHECK(code_of([&] { q.get_many(10, 10s); }) == errc::bad_message);
  CHECK(q.get_many(10, 10s) == std::vector<std::int32_t>{8});
  CHECK(code_of([&] { q.get_nowait(); }) == errc::empty);
}

TEST_CASE("an item above the receiver's largest frame is lost alone; the puts behind it go on") {
  mproc::node_options small;
  small.max_frame = 1u << 20;  // what this process accepts from its children
  test::scoped_node node{small};
  mproc::queue<std::string> q{*node};
  int_queue out{*node};
  auto p = node->spawn_process("oversized_producer", {}, q, std::int32_t{2 << 20}, out);
  CHECK(out.get(30s) == 1);
  std::vector<std::string> got;
  for (int i = 0; i < 3; ++i)
    got.push_back(q.get(10s));
  CHECK(got == std::vector<std::string>{"a", "c", "d"});
  CHECK(p.join(10s));
}

TEST_CASE("put_nowait() on an unbounded queue is never refused as full, large items included") {
  test::scoped_node node;
  mproc::queue<std::string> q{*node};
  // Each round: when x's batch is still on its way, y waits behind it and fills most of the
  // next batch, and z would go beyond that batch's 512 KiB: it waits its turn. (How often x
  // is still on its way is up to the scheduler: a hundred rounds.)
  for (int round = 0; round < 100; ++round) {
    q.put("x");
    q.put(std::string(400 << 10, 'y'));
    CHECK(code_of([&] { q.put_nowait(std::string(200 << 10, 'z')); }) == errc::none);
    CHECK(q.get(10s) == "x");
    CHECK(q.get(10s).size() == 400u << 10);
    CHECK(q.get(10s).size() == 200u << 10);
  }
}
