// A plain function as a process's target, as Python's Process(target=f, args=(...)):
// registered with MPROC_TASK, arguments converted at compile time, handles among them; and
// an object whose run() is the target, as a Process subclass (MPROC_PROCESS_CLASS).
#include <unistd.h>

#include <cstdint>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>

#include <catch2/catch.hpp>

#include "mproc/actors/queue.hpp"
#include "mproc/runtime/node.hpp"
#include "mproc/runtime/task.hpp"
#include "support.hpp"

using namespace std::chrono_literals;
using mproc::errc;

namespace {

// Puts a greeting with its process's facts into `out`.
void greet(std::string who, std::int64_t times, mproc::queue<std::string> out) {
  for (std::int64_t i = 0; i < times; ++i)
    out.put("hello " + who + " from " + mproc::current_process_name() + " pid "
            + std::to_string(::getpid()));
}
MPROC_TASK(greet);

// Parameters by reference, and a result that is dropped.
std::int64_t count_to(const std::int64_t& n, mproc::queue<std::int64_t>& out) {
  for (std::int64_t i = 1; i <= n; ++i)
    out.put(i);
  return n;
}
MPROC_TASK(count_to);

void refuse(std::string why) {
  throw std::invalid_argument(why);
}
MPROC_TASK(refuse);

void not_registered(std::int32_t) {}

// A Process subclass in Python: its fields are the arguments, run() the body.
struct line_writer {
  std::string path;
  std::int64_t lines = 0;
  MSGPACK_DEFINE(path, lines);

  void run() const {
    std::ofstream out{path};
    for (std::int64_t i = 0; i < lines; ++i)
      out << mproc::current_process_name() << " " << i << "\n";
  }
};

} // namespace

MPROC_PROCESS_CLASS(line_writer);

TEST_CASE("a plain function runs in a child with arguments converted to its parameters") {
  test::stderr_capture err;
  test::scoped_node node{};
  mproc::queue<std::string> q{*node};
  // a string literal for std::string, an int for std::int64_t
  auto p = node->spawn_process(greet, {.name = "greeter"}, "bob", 2, q);
  auto expected = "hello bob from greeter pid " + std::to_string(p.pid());
  CHECK(q.get(10s) == expected);
  CHECK(q.get(10s) == expected);
  REQUIRE(p.join(10s));
  CHECK(p.exitcode() == 0);  // the function returned: the process ends, as Python's
  CHECK(p.pid() != ::getpid());
  // Its handles went with the function: the queue's agent must still send what was put and
  // learn that it arrived (an agent nobody holds used to end with answers still due: items
  // lost, or an exit that waited 10 s), and leaving must not wait on the I/O thread.
  CHECK_THAT(err.text(), !Catch::Contains("not delivered"));
}

TEST_CASE("a process made from a function starts when asked, references work, results drop") {
  test::scoped_node node{};
  mproc::queue<std::int64_t> q{*node};
  mproc::process p{*node, count_to, {}, 3, q};
  CHECK_FALSE(p.is_alive());
  p.start();
  for (std::int64_t i = 1; i <= 3; ++i)
    CHECK(q.get(10s) == i);
  REQUIRE(p.join(10s));
  CHECK(p.exitcode() == 0);
}

TEST_CASE("a function that throws ends its process with 1 and says what it threw") {
  test::stderr_capture err;
  test::scoped_node node{};
  auto p = node->spawn_process(refuse, {.name = "refuser"}, "not today");
  REQUIRE(p.join(10s));
  CHECK(p.exitcode() == 1);
  CHECK_THAT(err.text(), Catch::Contains("Process refuser (pid " + std::to_string(p.pid())
                                         + "): std::invalid_argument: not today\n"));
}

TEST_CASE("a function nobody registered is refused before a process starts") {
  test::scoped_node node{};
  auto e = test::error_of([&] { node->spawn_process(not_registered, {}, 1); });
  CHECK(e.code() == errc::unknown_actor_name);
  CHECK_THAT(e.what(), Catch::Contains("MPROC_TASK"));
  CHECK(node->active_children().empty());
}

TEST_CASE("an object whose run() is the target runs in a child, as a Process subclass") {
  test::scoped_node node{};
  auto path = "/tmp/mproc-line-writer-" + std::to_string(::getpid());
  auto p = node->spawn_process(line_writer{path, 3}, {.name = "writer"});
  REQUIRE(p.join(10s));
  CHECK(p.exitcode() == 0);
  std::ifstream in{path};
  std::string all{std::istreambuf_iterator<char>{in}, std::istreambuf_iterator<char>{}};
  ::unlink(path.c_str());
  CHECK(all == "writer 0\nwriter 1\nwriter 2\n");
}
