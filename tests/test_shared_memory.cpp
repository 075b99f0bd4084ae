// shared_value, shared_array and shared_memory seen and changed by other processes; what
// refuses to travel, and what is left behind (nothing).
#include "mproc/actors/shared_memory.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <limits>

#include <caf/blocking_actor.hpp>

#include <catch2/catch.hpp>

#include "mproc/actors/event.hpp"
#include "mproc/actors/lock.hpp"
#include "mproc/actors/queue.hpp"
#include "mproc/actors/shared_array.hpp"
#include "mproc/actors/shared_value.hpp"
#include "mproc/runtime/actor_registry.hpp"
#include "mproc/runtime/node.hpp"
#include "support.hpp"

using namespace std::chrono_literals;
using mproc::errc;
using test::code_of;

namespace {

struct point {
  double x;
  double y;
};

void scale(caf::blocking_actor*, mproc::shared_value<point> p, mproc::shared_array<double> a,
           mproc::shared_memory m) {
  auto held = p.get_lock().hold();
  p.raw().x *= 2;
  p.raw().y *= 2;
  for (auto& v : a.raw())
    v *= 2;
  for (auto& b : m.buf())
    b = std::byte{static_cast<unsigned char>(std::to_integer<unsigned char>(b) + 1)};
}

// Tries the lock it was given, and says on `said` whether it was free (1) or held (2).
void try_lock(caf::blocking_actor*, mproc::rlock l, mproc::shared_array<std::int32_t> said) {
  bool got = l.acquire(true, 0ms).ok;
  said.raw()[0] = got ? 1 : 2;
  if (got)
    l.release();
}

// Attaches to the block named `name` and writes `value` into its first byte.
void write_named(caf::blocking_actor*, std::string name, std::int32_t value) {
  auto block = mproc::shared_memory::attach(mproc::this_node(), name);
  block.buf()[0] = std::byte{static_cast<unsigned char>(value)};
}

// Attaches to the block named `name` and unlinks the name, as a consumer may in Python.
void unlink_named(caf::blocking_actor*, std::string name) {
  mproc::shared_memory::attach(mproc::this_node(), name).unlink();
}

// Expects a shared_value<double>; sent an int one, the spawn is refused.
void takes_double(caf::blocking_actor*, mproc::shared_value<double>) {}

// Starts an update of `p` under its lock (x written, y not yet), says so, and waits to be
// killed in the middle of it.
void half_update(caf::blocking_actor*, mproc::shared_value<point> p, mproc::event started) {
  auto held = p.get_lock().hold();
  p.raw().x = 100;
  started.set();
  mproc::event{}.wait(std::chrono::seconds{60});
}

} // namespace

MPROC_ACTOR(half_update);
MPROC_ACTOR(scale);
MPROC_ACTOR(write_named);
MPROC_ACTOR(unlink_named);
MPROC_ACTOR(takes_double);
MPROC_ACTOR(try_lock);

TEST_CASE("a value's get_lock() sent to a child is the same lock there") {
  test::scoped_node node;
  mproc::shared_value<double> v{0.5};
  mproc::shared_array<std::int32_t> said{std::vector<std::int32_t>{0}, false};
  {
    auto held = v.get_lock().hold();
    auto child = node->spawn_process("try_lock", {}, v.get_lock(), said);
    REQUIRE(child.join(10s));
    CHECK(child.exitcode() == 0);
    CHECK(said.raw()[0] == 2);  // held here, so held there
  }
  auto child = node->spawn_process("try_lock", {}, v.get_lock(), said);
  REQUIRE(child.join(10s));
  CHECK(said.raw()[0] == 1);
  CHECK(v.get() == 0.5);  // not taken for good by the child
}

TEST_CASE("a value, an array and a block changed by a child are seen changed here") {
  test::scoped_node node;
  mproc::shared_value<point> p{{1.5, -2}};
  mproc::shared_array<double> a{std::vector<double>{1, 2, 3}};
  mproc::shared_memory m{4096};
  m.buf()[4095] = std::byte{41};
  auto child = node->spawn_process("scale", {}, p, a, m);
  REQUIRE(child.join(10s));
  CHECK(child.exitcode() == 0);
  CHECK(p.get().x == 3);
  CHECK(p.get().y == -4);
  CHECK(a.to_vector() == std::vector<double>{2, 4, 6});
  CHECK(m.buf()[0] == std::byte{1});
  CHECK(m.buf()[4095] == std::byte{42});
}

TEST_CASE("a get that takes the lock from a holder killed mid-update says so in the log") {
  // get() has no owner_died to return; the half-written value must not pass unremarked.
  test::stderr_capture err;
  test::scoped_node node;
  mproc::shared_value<point> p{{1, 2}};
  mproc::event started;
  auto child = node->spawn_process("half_update", {}, p, started);
  REQUIRE(started.wait(10s));
  child.kill();
  REQUIRE(child.join(10s));
  CHECK(p.get().x == 100);  // half-written: x new, y old
  CHECK(p.get().y == 2);
  CHECK_THAT(err.text(), Catch::Contains("died holding it"));
}

TEST_CASE("a value without a lock has no get_lock; array indices are checked") {
  mproc::shared_value<std::int32_t> v{7, false};
  CHECK(v.get() == 7);
  v.set(8);
  CHECK(v.raw() == 8);
  CHECK(code_of([&] { (void)v.get_lock(); }) == errc::bad_arguments);
  mproc::shared_array<std::int16_t> a{3};
  CHECK(a.to_vector() == std::vector<std::int16_t>{0, 0, 0});
  CHECK(code_of([&] { a.get(3); }) == errc::bad_arguments);
  CHECK(a.size() == 3);
}

TEST_CASE("a shared value of another type is refused as an argument, with a reason") {
  test::scoped_node node;
  mproc::shared_value<std::int32_t> wrong{1};
  CHECK(code_of([&] { node->spawn_process("takes_double", {}, wrong).join(10s); }) != errc::none);
}

TEST_CASE("shared memory of size 0, or of a negative size converted to size_t, is refused") {
  // Size 0 was rounded up to 1 byte in silence; Python raises ValueError.
  for (std::size_t size : {std::size_t{0}, static_cast<std::size_t>(-1), static_cast<std::size_t>(-64),
                           std::numeric_limits<std::size_t>::max() - 63})
    CHECK(code_of([&] { mproc::shared_memory m{size}; }) == errc::bad_arguments);
  mproc::shared_memory small{16};
  CHECK(small.size() == 16);
}

TEST_CASE("shared memory cannot go inside a queue item") {
  test::scoped_node node;
  mproc::queue<mproc::shared_memory> q{*node};
  CHECK(code_of([&] { q.put(mproc::shared_memory{16}); }) != errc::none);
}

namespace {

// This process's mappings and descriptors of mproc's shared objects (memfd "mproc").
std::size_t shared_objects_here() {
  std::size_t n = 0;
  std::ifstream maps{"/proc/self/maps"};
  for (std::string line; std::getline(maps, line);)
    n += line.ends_with("/memfd:mproc (deleted)");
  for (const auto& fd : std::filesystem::directory_iterator{"/proc/self/fd"}) {
    std::error_code ec;
    n += std::filesystem::read_symlink(fd.path(), ec).string() == "/memfd:mproc (deleted)";
  }
  return n;
}

} // namespace

TEST_CASE("shared memory goes with its last handle, a killed holder's too; none in /dev/shm") {
  test::scoped_node node;
  auto files = test::entries("/dev/shm");
  auto here = shared_objects_here();
  {
    mproc::shared_memory m{1 << 20};
    mproc::shared_value<point> v{{1, 2}};
    CHECK(shared_objects_here() > here);
    mproc::event started;
    auto child = node->spawn_process("half_update", {}, v, started);
    REQUIRE(started.wait(10s));  // it holds the value, mapped, and its lock
    child.kill();
    REQUIRE(child.join(10s));
    CHECK(test::entries("/dev/shm") == files);
  }
  CHECK(shared_objects_here() == here);
  CHECK(test::entries("/dev/shm") == files);
}

namespace {

// Decodes [0, 2] (descriptor 0, kind lock) as a lock, with `fd` as the frame's descriptor.
std::string decode_lock_from(int fd) {
  msgpack::sbuffer buf;
  msgpack::packer<msgpack::sbuffer> pk{buf};
  pk.pack_array(2);
  pk.pack(std::uint32_t{0});
  pk.pack(std::uint32_t{2});
  auto handle = msgpack::unpack(buf.data(), buf.size());
  std::vector<int> fds{fd};
  mproc::wire::codec_state st;
  st.descriptors = &fds;
  auto l = mproc::wire::codec<mproc::lock>::blank();
  CHECK_FALSE(mproc::wire::codec<mproc::lock>::decode(handle.get(), l, st));
  CHECK(fds[0] == -1);  // taken, and closed by the decoder
  CHECK(::fcntl(fd, F_GETFD) == -1);
  return st.error;
}

} // namespace

TEST_CASE("a descriptor that is not a lock's shared memory is refused as a lock, and closed") {
  int p[2];
  REQUIRE(::pipe(p) == 0);
  ::close(p[1]);
  CHECK(decode_lock_from(p[0]).find("not mproc shared memory") != std::string::npos);

  int unsealed = ::memfd_create("x", MFD_CLOEXEC);
  REQUIRE(::ftruncate(unsealed, 4096) == 0);
  CHECK(decode_lock_from(unsealed).find("not mproc shared memory") != std::string::npos);

  mproc::event e;
  msgpack::sbuffer buf;
  msgpack::packer<msgpack::sbuffer> pk{buf};
  std::vector<int> fds;
  mproc::wire::codec_state st;
  st.descriptors = &fds;
  mproc::wire::codec<mproc::event>::encode(pk, e, st);
  REQUIRE(fds.size() == 1);
  CHECK(decode_lock_from(fds[0]).find("another kind") != std::string::npos);
}

TEST_CASE("a named block is attached by name in a child, until the name is unlinked") {
  test::scoped_node node;
  auto block = mproc::shared_memory::create(*node, "frames", 64);
  CHECK(block.name() == "frames");
  CHECK(code_of([&] { mproc::shared_memory::create(*node, "frames", 64); }) == errc::bad_arguments);
  auto p = node->spawn_process("write_named", {}, std::string{"frames"}, std::int32_t{7});
  REQUIRE(p.join(10s));
  CHECK(p.exitcode() == 0);
  CHECK(block.buf()[0] == std::byte{7});
  auto here = mproc::shared_memory::attach(*node, "frames");
  CHECK(here.buf().data() != nullptr);
  CHECK(here.size() == 64);
  block.unlink();  // at once in the creating process
  CHECK(code_of([&] { mproc::shared_memory::attach(*node, "frames", 1s); }) == errc::no_such_actor);
  auto again = mproc::shared_memory::create(*node, "frames", 8);  // the name is free again
  again.unlink();
  here.buf()[1] = std::byte{8};  // the memory stays for its holders
  CHECK(block.buf()[1] == std::byte{8});
  auto q = node->spawn_process("write_named", {}, std::string{"frames"}, std::int32_t{9});
  REQUIRE(q.join(10s));
  CHECK(q.exitcode() == 1);  // no such name any more: the child's attach threw
  CHECK(code_of([] { mproc::shared_memory{8}.unlink(); }) == errc::bad_arguments);
}

TEST_CASE("a child that attached a named block can unlink its name, gone when unlink returns") {
  test::scoped_node node;
  auto block = mproc::shared_memory::create(*node, "frames", 64);
  auto p = node->spawn_process("unlink_named", {}, std::string{"frames"});
  REQUIRE(p.join(10s));
  CHECK(p.exitcode() == 0);
  CHECK(code_of([&] { mproc::shared_memory::attach(*node, "frames", 1s); })
        == errc::no_such_actor);
  auto again = mproc::shared_memory::create(*node, "frames", 64);  // the name is free
  again.unlink();
  block.buf()[0] = std::byte{1};  // the memory stays for its holders
}
