// Introspection from outside the program (docs/introspection.md): a root answers on a
// private Unix socket with the tree of its processes, its children's nodes asked through
// their links, and the queues, pools and supervisors each node holds.
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <stdexcept>
#include <string>

#include <catch2/catch.hpp>

#include <caf/event_based_actor.hpp>

#include "mproc/actors/event.hpp"
#include "mproc/actors/pool.hpp"
#include "mproc/actors/queue.hpp"
#include "mproc/runtime/actor_registry.hpp"
#include "mproc/runtime/inspect.hpp"
#include "mproc/runtime/internal/inspect_wire.hpp"
#include "mproc/runtime/node.hpp"
#include "mproc/runtime/supervisor.hpp"
#include "mproc/runtime/task.hpp"
#include "support.hpp"

using namespace std::chrono_literals;
using mproc::value;

namespace {

// A grandchild: waits until the test is done.
void wait_for(mproc::event done) {
  done.wait(60s);
}
MPROC_TASK(wait_for);

// The middle process: starts a grandchild, tells its pid, waits, and joins it.
void parent_of_one(mproc::event done, mproc::queue<std::int64_t> pids) {
  auto grandchild = mproc::this_node().spawn_process(wait_for, {.name = "grandchild"}, done);
  pids.put(grandchild.pid());
  done.wait(60s);
  grandchild.join(10s);
}
MPROC_TASK(parent_of_one);

caf::behavior idler(caf::event_based_actor*) {
  return {[](std::int32_t x) { return x; }};
}

std::int64_t square(std::int64_t x) {
  return x * x;
}
MPROC_TASK(square);

std::int64_t number(const value& map, const char* key) {
  const value* v = map.find(key);
  return v && v->type() == value::kind::integer ? v->as<std::int64_t>() : -1;
}

std::string text(const value& map, const char* key) {
  const value* v = map.find(key);
  return v && v->type() == value::kind::string ? v->as<std::string>() : "";
}

const value::array_t& items(const value& map, const char* key) {
  static const value::array_t none;
  const value* v = map.find(key);
  return v && v->type() == value::kind::array ? std::get<value::array_t>(v->raw()) : none;
}

// The entry of `key` == `x` in the array `map[list]`, or nil.
value entry(const value& map, const char* list, const char* key, std::int64_t x) {
  for (const auto& e : items(map, list))
    if (number(e, key) == x)
      return e;
  return {};
}

value object_of(const value& node, const std::string& kind) {
  for (const auto& o : items(node, "objects"))
    if (text(o, "kind") == kind)
      return o;
  return {};
}

std::string socket_path(pid_t pid) {
  return mproc::inspect_directory() + "/" + std::to_string(pid) + ".sock";
}

// A raw connection to this process's socket, for requests no client of ours would send.
int raw_connection() {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  auto path = socket_path(::getpid());
  std::strcpy(addr.sun_path, path.c_str());
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  return fd;
}

} // namespace

MPROC_ACTOR(idler);

TEST_CASE("a root's snapshot shows its processes, their children, and what each node holds") {
  test::scoped_node node;
  mproc::event done;
  mproc::queue<std::int64_t> pids{*node};
  auto middle = node->spawn_process(parent_of_one, {.name = "middle"}, done, pids);
  auto grandchild = pids.get(20s);
  mproc::queue<std::int64_t> backlog{*node, {.maxsize = 10}};
  for (std::int64_t i = 0; i < 3; ++i)
    backlog.put(i);
  mproc::pool workers{*node, {.processes = 2}};
  CHECK(workers.map(square, std::vector<std::int64_t>{1, 2, 3}) == std::vector<std::int64_t>{1, 4, 9});
  mproc::supervisor sup{*node, {.intensity = 5, .name = "sup"}, {{.id = "w", .actor = "idler"}}};
  auto first = sup.tree().children.at(0).pid;
  ::kill(static_cast<pid_t>(first), SIGKILL);
  REQUIRE(test::eventually(10s, [&] {
    auto c = sup.tree().children.at(0);
    return c.state == "running" && c.pid != first;
  }));
  auto second = sup.tree().children.at(0).pid;

  // The queue's agent in this process sends puts in batches: look until all have arrived.
  value snap;
  auto backlog_of = [&] {
    for (const auto& o : items(snap, "objects"))
      if (text(o, "kind") == "queue" && number(o, "maxsize") == 10)
        return o;
    return value{};
  };
  REQUIRE(test::eventually(10s, [&] {
    snap = mproc::inspect_node(::getpid());
    return number(backlog_of(), "accepted") == 3;
  }));
  CHECK(number(snap, "pid") == ::getpid());
  CHECK(text(snap, "role") == "root");

  // The child, and through it the grandchild, as the processes really are.
  auto m = entry(snap, "children", "pid", middle.pid());
  REQUIRE(m.type() == value::kind::map);
  CHECK(text(m, "name") == "middle");
  CHECK(text(m, "target") == "parent_of_one");
  CHECK(text(m, "state") == "running");
  CHECK(number(*m.find("link"), "frames_in") > 0);
  // Its link went into shared memory (node_options::shared_memory_links), and so did its own
  // link to its parent, as the child sees it.
  CHECK(*m.find("link")->find("shared_memory") == value{true});
  const value& sub = *m.find("node");
  CHECK(text(sub, "role") == "child");
  CHECK(number(sub, "pid") == middle.pid());
  CHECK(*sub.find("parent_link")->find("shared_memory") == value{true});
  auto g = entry(sub, "children", "pid", grandchild);
  REQUIRE(g.type() == value::kind::map);
  CHECK(text(g, "name") == "grandchild");
  CHECK(text(g, "state") == "running");
  CHECK(number(*g.find("node"), "pid") == grandchild);

  // A queue shows its items and counters.
  CHECK(number(backlog_of(), "size") == 3);
  CHECK(number(backlog_of(), "taken") == 0);
  CHECK(number(backlog_of(), "producers") == 1);  // this process's agent
  CHECK(number(backlog_of(), "consumers") == 0);

  // The pool's workers are children of this node, running.
  auto pool = object_of(snap, "pool");
  REQUIRE(items(pool, "workers").size() == 2);
  CHECK(number(pool, "chunks_done") >= 1);
  CHECK(number(pool, "items_done") == 3);
  // Alive children of this node: "running", or still "starting" for a moment after their
  // first pulls (a worker asks for work before its spawn's answer reaches this node).
  for (const auto& w : items(pool, "workers")) {
    auto state = text(entry(snap, "children", "pid", w.as<std::int64_t>()), "state");
    CHECK((state == "running" || state == "starting"));
  }

  // The supervisor counts the restart; the killed incarnation shows how it ended.
  auto s = object_of(snap, "supervisor");
  CHECK(text(s, "name") == "sup");
  auto w = entry(s, "children", "pid", second);
  CHECK(number(w, "restarts") == 1);
  auto killed = entry(snap, "children", "pid", first);
  CHECK(text(killed, "state") == "ended");
  CHECK(number(killed, "exitcode") == -SIGKILL);

  done.set();
  REQUIRE(middle.join(20s));
  CHECK(middle.exitcode() == 0);
}

TEST_CASE("a child's start method is the one it was started by, not the one asked for") {
  mproc::node_options options;
  options.executable = "/proc/self/exe";  // another program runs the children: no fork server
  test::scoped_node node{options};
  mproc::event done;
  auto p = node->spawn_process(
    wait_for, {.name = "by-exec", .start_method = mproc::start_method::forkserver}, done);
  auto c = entry(mproc::inspect_node(::getpid()), "children", "pid", p.pid());
  CHECK(text(c, "method") == "exec");
  done.set();
  REQUIRE(p.join(20s));
}

TEST_CASE("a stopped child is shown as not answering; its siblings are answered within the time") {
  test::scoped_node node;
  mproc::event done;
  mproc::queue<std::int64_t> pids{*node};
  auto stopped = node->spawn_process(wait_for, {.name = "stopped"}, done);
  auto awake = node->spawn_process(wait_for, {.name = "awake"}, done);
  ::kill(stopped.pid(), SIGSTOP);
  REQUIRE(test::eventually(10s, [&] { return test::all_threads_stopped(stopped.pid()); }));
  auto snap = mproc::inspect_node(::getpid());
  auto s = entry(snap, "children", "pid", stopped.pid());
  CHECK_THAT(text(*s.find("node"), "error"), Catch::Contains("in time"));
  auto a = entry(snap, "children", "pid", awake.pid());
  CHECK(number(*a.find("node"), "pid") == awake.pid());
  // The root's own objects were asked while it waited for the stopped child: all answered
  // (they got "not asked: no time left" when asked after that wait).
  bool queue_answered = false;
  for (const auto& o : items(snap, "objects"))
    queue_answered |= text(o, "kind") == "queue" && o.find("error") == nullptr;
  CHECK(queue_answered);
  // A second snapshot sends the stopped child no second question: it would pile up.
  snap = mproc::inspect_node(::getpid());
  s = entry(snap, "children", "pid", stopped.pid());
  CHECK_THAT(text(*s.find("node"), "error"), Catch::Contains("earlier question is unanswered"));
  ::kill(stopped.pid(), SIGCONT);
  done.set();
  CHECK(stopped.join(20s));
  CHECK(awake.join(20s));
}

TEST_CASE("a root's socket is its user's alone and goes with it; a dead root's goes at the next start") {
  auto dir = std::filesystem::temp_directory_path() / ("mproc-inspect-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  ::chmod(dir.c_str(), 0700);
  test::scoped_env runtime_dir{"XDG_RUNTIME_DIR", dir.c_str()};

  // What a root killed by SIGKILL leaves: a socket file of a pid that no longer exists.
  pid_t dead = ::fork();
  if (dead == 0)
    ::_exit(0);
  ::waitpid(dead, nullptr, 0);
  std::filesystem::create_directories(mproc::inspect_directory());
  ::chmod(mproc::inspect_directory().c_str(), 0700);
  auto leave_stale = [](const std::string& path) {  // bound, never listening, closed
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strcpy(addr.sun_path, path.c_str());
    int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    ::close(fd);
  };
  leave_stale(socket_path(dead));
  REQUIRE(std::filesystem::exists(socket_path(dead)));
  // It refuses connections: not listed. (Roots of other tests, in /tmp/mproc-<uid>, may be.)
  auto listed = [](pid_t pid) {
    auto roots = mproc::inspect_roots();
    return std::find(roots.begin(), roots.end(), pid) != roots.end();
  };
  CHECK_FALSE(listed(dead));
  // The same where the pid lives again, reused by a process that is no root: not listed.
  pid_t reused = ::getppid();
  leave_stale(socket_path(reused));
  CHECK_FALSE(listed(reused));
  ::unlink(socket_path(reused).c_str());

  {
    test::scoped_node node;
    CHECK_FALSE(std::filesystem::exists(socket_path(dead)));
    struct stat st {};
    REQUIRE(::stat(socket_path(::getpid()).c_str(), &st) == 0);
    CHECK(S_ISSOCK(st.st_mode));
    CHECK((st.st_mode & 0777) == 0600);
    REQUIRE(::stat(mproc::inspect_directory().c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0700);
    CHECK(listed(::getpid()));
  }
  CHECK_FALSE(std::filesystem::exists(socket_path(::getpid())));
  CHECK_THROWS_AS(mproc::inspect_node(::getpid(), 2s), mproc::error);

  // A socket at this pid's path that somebody listens on (a root of another pid namespace
  // sharing the directory) is neither taken over nor removed: introspection is off.
  {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strcpy(addr.sun_path, socket_path(::getpid()).c_str());
    int other = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(::bind(other, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    REQUIRE(::listen(other, 1) == 0);
    {
      test::stderr_capture err;
      test::scoped_node node;
      CHECK_THAT(err.text(), Catch::Contains("introspection off"));
    }
    CHECK(std::filesystem::exists(socket_path(::getpid())));
    ::close(other);
    ::unlink(socket_path(::getpid()).c_str());
  }

  // A directory others may enter is not used: the node runs, without a socket.
  ::chmod(mproc::inspect_directory().c_str(), 0755);
  {
    test::stderr_capture err;
    test::scoped_node node;
    CHECK_FALSE(std::filesystem::exists(socket_path(::getpid())));
    CHECK_THAT(err.text(), Catch::Contains("introspection off"));
  }
  std::filesystem::remove_all(dir);
}

TEST_CASE("garbage on the socket gets no snapshot and leaves the node answering") {
  test::scoped_node node;
  auto deadline = [] { return mproc::detail::inspect_clock::now() + 5s; };
  {  // bytes that are no frame: a length far beyond the limit
    int fd = raw_connection();
    std::string junk = "GET / HTTP/1.0\r\n\r\n";
    CHECK(::write(fd, junk.data(), junk.size()) == static_cast<ssize_t>(junk.size()));
    char c;
    CHECK(::read(fd, &c, 1) <= 0);  // closed (or reset: it left bytes unread), no answer
    ::close(fd);
  }
  {  // a frame that holds no request
    int fd = raw_connection();
    mproc::detail::write_inspect_frame(fd, value{42}, deadline());
    auto reply = mproc::detail::read_inspect_frame(fd, 1 << 20, deadline());
    CHECK(reply.find("ok")->as<bool>() == false);
    CHECK_THAT(text(reply, "error"), Catch::Contains("\"op\""));
    ::close(fd);
  }
  {  // an op it does not know
    int fd = raw_connection();
    mproc::detail::write_inspect_frame(fd, value::map_t{{"op", "rm -rf"}}, deadline());
    auto reply = mproc::detail::read_inspect_frame(fd, 1 << 20, deadline());
    CHECK_THAT(text(reply, "error"), Catch::Contains("unknown op 'rm -rf'"));
    ::close(fd);
  }
  {  // a client that connects and goes without a word
    int fd = raw_connection();
    ::close(fd);
  }
  CHECK(number(mproc::inspect_node(::getpid()), "pid") == ::getpid());
}

TEST_CASE("a report that throws anything at all is shown as its error; the node lives on") {
  test::scoped_node node;
  mproc::inspect_source odd{"odd", [](std::chrono::milliseconds) -> value { throw 42; }};
  mproc::inspect_source plain{"plain", [](std::chrono::milliseconds) -> value {
                                throw std::runtime_error{"out of luck"};
                              }};
  auto snap = mproc::inspect_node(::getpid());
  std::map<std::string, std::string> errors;
  for (const auto& o : items(snap, "objects"))
    errors[text(o, "kind")] = text(o, "error");
  CHECK_THAT(errors["plain"], Catch::Contains("out of luck"));
  CHECK_FALSE(errors["odd"].empty());
  CHECK(number(mproc::inspect_node(::getpid()), "pid") == ::getpid());
}
