// Start method "forkserver": what a forked child gets, and what the server's faults cost.
// (The process, queue, pool and supervisor suites run under both start methods.)
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <climits>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <future>
#include <mutex>
#include <sstream>
#include <string>
#include <vector>
#include <algorithm>
#include <thread>

#include <caf/event_based_actor.hpp>

#include <catch2/catch.hpp>

#include "mproc/runtime/actor_registry.hpp"
#include "mproc/runtime/node.hpp"
#include "support.hpp"

using namespace std::chrono_literals;

namespace {

std::string open_descriptors() {
  std::string list;
  DIR* dir = ::opendir("/proc/self/fd");
  while (auto* e = ::readdir(dir))
    if (e->d_name[0] != '.' && std::atoi(e->d_name) != ::dirfd(dir))
      list += std::string{e->d_name} + " ";
  ::closedir(dir);
  return list;
}

// Answers with what its process was given when it started, one line each: the parent's
// pid, the working directory, $MPROC_TEST_FORK_VAR, the open descriptors.
caf::behavior birth_facts(caf::event_based_actor*) {
  return {[](caf::get_atom) {
    char cwd[PATH_MAX] = {};
    if (::getcwd(cwd, sizeof cwd) == nullptr)
      cwd[0] = '\0';
    const char* var = std::getenv("MPROC_TEST_FORK_VAR");
    return std::to_string(::getppid()) + "\n" + cwd + "\n" + (var != nullptr ? var : "") + "\n"
           + open_descriptors();
  }};
}

constexpr auto forkserver = mproc::start_method::forkserver;

std::vector<std::string> facts_of(mproc::node& node, const mproc::process& p) {
  std::istringstream text{node.request<std::string>(p.actor(), 10s, caf::get_atom::value)};
  std::vector<std::string> lines;
  for (std::string line; std::getline(text, line);)
    lines.push_back(line);
  lines.resize(4);
  return lines;
}

std::string link_of(const std::string& path) {
  char target[PATH_MAX] = {};
  auto n = ::readlink(path.c_str(), target, sizeof target - 1);
  return n > 0 ? std::string{target, static_cast<std::size_t>(n)} : std::string{};
}

// Whether process `pid` has a descriptor open on `what` (a readlink text: "pipe:[1234]").
bool holds(pid_t pid, const std::string& what) {
  auto dir = "/proc/" + std::to_string(pid) + "/fd";
  DIR* d = ::opendir(dir.c_str());
  REQUIRE(d != nullptr);
  bool found = false;
  while (auto* e = ::readdir(d))
    found = found || (e->d_name[0] != '.' && link_of(dir + "/" + e->d_name) == what);
  ::closedir(d);
  return found;
}

pid_t ppid_of(mproc::node& node, const mproc::process& p) {
  return static_cast<pid_t>(std::stoi(facts_of(node, p)[0]));
}

// A forked child shares the program's command line; an exec'd one carries --mproc-child.
bool forked(pid_t pid) {
  std::ifstream in{"/proc/" + std::to_string(pid) + "/cmdline"};
  std::string cmdline{std::istreambuf_iterator<char>{in}, {}};
  return !cmdline.empty() && cmdline.find("--mproc-child") == std::string::npos;
}

// The child of this process that is not one of `known`: the fork server.
pid_t other_child(std::initializer_list<pid_t> known) {
  for (pid_t pid : test::children())
    if (std::find(known.begin(), known.end(), pid) == known.end())
      return pid;
  return 0;
}

// Kills the children and checks each ended by SIGKILL and was reaped, and no child of this
// process is left a zombie (the fork servers included).
void kill_and_reap(std::initializer_list<mproc::process*> children) {
  for (auto* p : children)
    p->kill();
  for (auto* p : children) {
    CHECK(p->join(5s));
    CHECK(p->exitcode() == -SIGKILL);
  }
  CHECK(test::zombie_children() == 0);
}

// For its lifetime, the fork servers the nodes start fail as `fault` says
// (fork_server_protocol.hpp).
struct server_fault : test::scoped_env {
  explicit server_fault(const char* fault) : test::scoped_env{"MPROC_FORK_SERVER_FAULT", fault} {}
};

// The servers "die-before-ready:N:PATH" counted in PATH (a byte each), a file of this test's
// own: removed before and after.
struct server_count {
  std::string path = "/tmp/mproc-test-servers-" + std::to_string(::getpid());
  server_count() { ::unlink(path.c_str()); }
  ~server_count() { ::unlink(path.c_str()); }
  server_count(const server_count&) = delete;
  server_count& operator=(const server_count&) = delete;
  std::size_t started() const {
    std::ifstream in{path};
    return std::string{std::istreambuf_iterator<char>{in}, {}}.size();
  }
};

} // namespace

MPROC_ACTOR(birth_facts);

TEST_CASE("a forked child is the node's own child, with the environment and directory of "
          "its start") {
  test::scoped_node node{{.start_method = forkserver}};
  char before[PATH_MAX];
  REQUIRE(::getcwd(before, sizeof before) != nullptr);
  ::setenv("MPROC_TEST_FORK_VAR", "set after the node", 1);
  REQUIRE(::chdir("/tmp") == 0);
  auto p = node->spawn_process("birth_facts", {});
  REQUIRE(::chdir(before) == 0);
  ::unsetenv("MPROC_TEST_FORK_VAR");
  CHECK(forked(p.pid()));
  auto facts = facts_of(*node, p);
  CHECK(facts[0] == std::to_string(::getpid()));
  CHECK(facts[1] == "/tmp");
  CHECK(facts[2] == "set after the node");
  p.kill();
  CHECK(p.join(5s));
  CHECK(p.exitcode() == -SIGKILL);
}

TEST_CASE("a child holds only the node's descriptors 0-2 and its link, by either method") {
  // A descriptor the program holds (a pipe's end, say), inheritable: no child may keep it.
  int held = ::fcntl(1, F_DUPFD, 200);
  REQUIRE(held >= 200);
  {
    test::scoped_node node{{.start_method = forkserver}};
    auto forked = node->spawn_process("birth_facts", {});
    auto execd = node->spawn_process("birth_facts", {.start_method = mproc::start_method::exec});
    auto fds = facts_of(*node, forked)[3];
    CHECK(fds == facts_of(*node, execd)[3]);
    CHECK(fds.find(" " + std::to_string(held) + " ") == std::string::npos);
    CHECK(fds.rfind("0 1 2 3 ", 0) == 0);
    forked.kill();
    execd.kill();
    CHECK(forked.join(5s));
    CHECK(execd.join(5s));
  }
  ::close(held);
}

TEST_CASE("a process that asks for forkserver in a node that starts by exec is forked") {
  test::scoped_node node{{.start_method = mproc::start_method::exec}};
  auto execd = node->spawn_process("birth_facts", {});
  auto asked = node->spawn_process("birth_facts", {.start_method = forkserver});
  CHECK_FALSE(forked(execd.pid()));
  CHECK(forked(asked.pid()));
  CHECK(ppid_of(*node, asked) == ::getpid());
  execd.kill();
  asked.kill();
  CHECK(execd.join(5s));
  CHECK(asked.join(5s));
}

TEST_CASE("a process name with a NUL byte is refused, and the next start still forks") {
  test::scoped_node node{{.start_method = forkserver}};
  mproc::process bad{*node, "birth_facts", {.name = std::string{"a\0b", 3}}};
  CHECK(test::code_of([&] { bad.start(); }) == mproc::errc::bad_arguments);
  auto good = node->spawn_process("birth_facts", {.name = "after"});  // the server lives on
  CHECK(forked(good.pid()));
  good.kill();
  REQUIRE(good.join(10s));
}

TEST_CASE("a close-on-exec descriptor on fd 0 (stdin closed) reaches no child, by either method") {
  // Before the node: no thread of it opens a descriptor that could take fd 0 meanwhile.
  int saved = ::fcntl(0, F_DUPFD_CLOEXEC, 200);
  REQUIRE(saved >= 200);
  ::close(0);
  int ends[2];
  REQUIRE(::pipe2(ends, O_CLOEXEC) == 0);  // lands on fd 0, as the node's own might
  REQUIRE(ends[0] == 0);
  test::scoped_node node{{.start_method = forkserver}};
  auto forked = node->spawn_process("birth_facts", {});
  auto execd = node->spawn_process("birth_facts", {.start_method = mproc::start_method::exec});
  auto pipe = link_of("/proc/self/fd/" + std::to_string(ends[1]));
  CHECK_FALSE(holds(forked.pid(), pipe));
  CHECK_FALSE(holds(execd.pid(), pipe));
  ::dup2(saved, 0);
  ::close(saved);
  ::close(ends[1]);
  forked.kill();
  execd.kill();
  CHECK(forked.join(5s));
  CHECK(execd.join(5s));
}

TEST_CASE("a fork server killed from outside is started again; its children live on") {
  test::scoped_node node{{.start_method = forkserver}};
  auto first = node->spawn_process("birth_facts", {});
  CHECK(forked(first.pid()));
  pid_t server = other_child({first.pid()});
  REQUIRE(server != 0);
  REQUIRE(::kill(server, SIGKILL) == 0);
  auto second = node->spawn_process("birth_facts", {});
  CHECK(forked(second.pid()));
  CHECK(ppid_of(*node, second) == ::getpid());
  CHECK(ppid_of(*node, first) == ::getpid());
  pid_t successor = other_child({first.pid(), second.pid()});
  CHECK(successor != 0);
  CHECK(successor != server);
  CHECK_FALSE(test::running(server));
  kill_and_reap({&first, &second});
}

TEST_CASE("a fork server killed before its first child is started again") {
  test::scoped_node node{{.start_method = forkserver}};
  pid_t server = 0;
  REQUIRE(test::eventually(5000ms, [&] { return (server = other_child({})) != 0; }));
  REQUIRE(::kill(server, SIGKILL) == 0);
  auto p = node->spawn_process("birth_facts", {});
  CHECK(forked(p.pid()));
  CHECK(ppid_of(*node, p) == ::getpid());
  CHECK_FALSE(test::running(server));
  kill_and_reap({&p});
}

TEST_CASE("fork servers that die before every fork do not hold a start up: after three, "
          "children start by exec") {
  server_fault servers_die{"die-before-fork"};
  test::scoped_node node{{.start_method = forkserver}};
  auto p = node->spawn_process("birth_facts", {});
  CHECK_FALSE(forked(p.pid()));
  CHECK(ppid_of(*node, p) == ::getpid());
  kill_and_reap({&p});
}

TEST_CASE("fork servers killed before they serve are started again past the three that die "
          "serving") {
  // Killed while the program's main() still runs (as an outside kill at a program's start
  // may): five in a row must not send every later start to exec.
  server_count servers;
  std::string fault = "die-before-ready:5:" + servers.path;
  server_fault first_five_die{fault.c_str()};
  test::scoped_node node{{.start_method = forkserver}};
  auto p = node->spawn_process("birth_facts", {});
  CHECK(forked(p.pid()));
  CHECK(ppid_of(*node, p) == ::getpid());
  kill_and_reap({&p});
  CHECK(servers.started() == 6);  // five killed, the sixth served
}

TEST_CASE("fork servers always killed before they serve do not hold a start up: after ten, "
          "children start by exec") {
  server_count servers;
  std::string fault = "die-before-ready:1000:" + servers.path;
  server_fault all_die{fault.c_str()};
  test::scoped_node node{{.start_method = forkserver}};
  auto p = node->spawn_process("birth_facts", {});
  CHECK_FALSE(forked(p.pid()));
  // Ten counted; the root's first may have died idle, before the start asked for it.
  CHECK(servers.started() >= 10);
  CHECK(servers.started() <= 11);
  kill_and_reap({&p});
}

TEST_CASE("a node whose starts went by exec after servers were killed tries a fork server "
          "again after a while") {
  // The first eleven servers are killed before they serve. After ten (eleven, when the
  // root's first died idle) starts go by exec; a server tried again after the wait (500 ms
  // here) dies too, or serves, and one tried after twice that serves.
  server_count servers;
  std::string fault = "die-before-ready:11:" + servers.path;
  server_fault first_eleven_die{fault.c_str()};
  test::scoped_env short_wait{"MPROC_FORK_SERVER_RETRY_MS", "500"};
  test::scoped_node node{{.start_method = forkserver}};
  auto execd = node->spawn_process("birth_facts", {});
  CHECK_FALSE(forked(execd.pid()));
  kill_and_reap({&execd});
  bool forked_again = false;
  for (auto deadline = std::chrono::steady_clock::now() + 10s;
       !forked_again && std::chrono::steady_clock::now() < deadline;) {
    auto p = node->spawn_process("birth_facts", {});
    forked_again = forked(p.pid());
    kill_and_reap({&p});
  }
  CHECK(forked_again);
  CHECK(servers.started() == 12);
}

TEST_CASE("a node whose fork servers exited at every start does not try another") {
  // A program that ends where a server should serve would do so every time: the three are
  // its chances, and after them starts go by exec for good, past any wait.
  test::stderr_capture log;
  server_fault servers_exit{"exit-before-fork"};
  test::scoped_env short_wait{"MPROC_FORK_SERVER_RETRY_MS", "1"};
  test::scoped_node node{{.start_method = forkserver}};
  auto first = node->spawn_process("birth_facts", {});
  CHECK_FALSE(forked(first.pid()));
  kill_and_reap({&first});
  auto seen = log.text().size();
  CHECK(log.text().find("exited") != std::string::npos);  // the servers' ends, as logged
  std::this_thread::sleep_for(20ms);  // past the wait, were there one
  auto second = node->spawn_process("birth_facts", {});
  CHECK_FALSE(forked(second.pid()));
  kill_and_reap({&second});
  CHECK(log.text().find("fork server", seen) == std::string::npos);  // none started, none gone
}

TEST_CASE("a child whose fork server died before answering is taken on, runs, and is "
          "reaped") {
  // Each server kills itself between forking a child and answering: the node learns the
  // child's pid from what the kernel wrote as it forked.
  server_fault servers_die{"die-after-fork"};
  test::scoped_node node{{.start_method = forkserver}};
  auto first = node->spawn_process("birth_facts", {});
  auto second = node->spawn_process("birth_facts", {});
  CHECK(forked(first.pid()));
  CHECK(forked(second.pid()));
  CHECK(ppid_of(*node, first) == ::getpid());
  CHECK(ppid_of(*node, second) == ::getpid());
  kill_and_reap({&first, &second});
}

TEST_CASE("a child killed with its fork server before either spoke is reaped, and its start "
          "fails") {
  // The server kills the child it forked, then itself: nobody says the child's pid, and the
  // child never speaks. Started again instead, its zombie would stay until the node ends.
  server_fault both_die{"kill-child-and-die-after-fork"};
  test::scoped_node node{{.start_method = forkserver}};
  auto e = test::error_of([&] { node->spawn_process("birth_facts", {}); });
  CHECK(mproc::exit_code_of(e.reason()) == -SIGKILL);
  CHECK(test::zombie_children() == 0);
}

TEST_CASE("a stopped fork server holds up neither the node nor a start") {
  test::scoped_node node{{.start_method = forkserver}};
  auto first = node->spawn_process("birth_facts", {});
  pid_t server = other_child({first.pid()});
  REQUIRE(server != 0);
  REQUIRE(::kill(server, SIGSTOP) == 0);
  mproc::process second{*node, "birth_facts", {}};
  std::promise<caf::error> started;
  second.start([&](caf::error e) { started.set_value(std::move(e)); });
  // While the start waits for the server (two seconds), the node serves its other children.
  CHECK(node->request<std::string>(first.actor(), 1s, caf::get_atom::value).size() > 0);
  auto result = started.get_future();
  REQUIRE(result.wait_for(20s) == std::future_status::ready);
  CHECK_FALSE(result.get());
  CHECK(forked(second.pid()));  // by a new server: the stopped one had served
  CHECK(ppid_of(*node, second) == ::getpid());
  CHECK_FALSE(test::running(server));  // killed and reaped
  CHECK(test::zombie_children() == 0);
  first.kill();
  second.kill();
  CHECK(first.join(5s));
  CHECK(second.join(5s));
}

TEST_CASE("a node created while other threads run still forks its children") {
  std::mutex m;
  std::condition_variable cv;
  bool done = false;
  std::thread busy{[&] {
    std::unique_lock lock{m};
    cv.wait(lock, [&] { return done; });
  }};
  {
    test::scoped_node node{{.start_method = forkserver}};
    auto p = node->spawn_process("birth_facts", {});
    CHECK(forked(p.pid()));  // the server is a program of its own: one thread
    CHECK(ppid_of(*node, p) == ::getpid());
    p.kill();
    CHECK(p.join(5s));
  }
  {
    std::lock_guard guard{m};
    done = true;
  }
  cv.notify_one();
  busy.join();
}

// Run by the next test case as a separate root program, which it kills.
TEST_CASE("helper: a root with forked children that waits to be killed", "[.helper]") {
  auto node = test::make_node({.start_method = forkserver});
  for (int i = 0; i < 3; ++i)
    node.spawn_process("birth_facts", {});
  std::ostringstream pids;
  pids << "pids:";
  for (pid_t pid : test::children())
    pids << ' ' << pid;  // the server among them
  std::printf("%s\n", pids.str().c_str());
  std::fflush(stdout);
  ::pause();
}

TEST_CASE("the children a fork server started die with their root") {
  int out[2];
  REQUIRE(::pipe2(out, O_CLOEXEC) == 0);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, out[1], 1);
  std::string self = "/proc/self/exe";
  char* argv[] = {self.data(), const_cast<char*>("helper: a root with forked children that waits to be killed"),
                  nullptr};
  pid_t root = 0;
  REQUIRE(::posix_spawn(&root, self.c_str(), &actions, nullptr, argv, environ) == 0);
  posix_spawn_file_actions_destroy(&actions);
  ::close(out[1]);
  std::string text;
  char buf[512];
  pollfd readable{out[0], POLLIN, 0};
  while (text.find('\n', text.find("pids:")) == std::string::npos
         && ::poll(&readable, 1, 20'000) == 1) {
    auto n = ::read(out[0], buf, sizeof buf);
    if (n <= 0)
      break;
    text.append(buf, static_cast<std::size_t>(n));
  }
  ::close(out[0]);
  ::kill(root, SIGKILL);
  ::waitpid(root, nullptr, 0);
  std::vector<pid_t> descendants;
  auto at = text.find("pids:");
  std::istringstream line{at == std::string::npos ? "" : text.substr(at + 5)};
  for (pid_t pid; line >> pid;)
    descendants.push_back(pid);
  CHECK(descendants.size() == 4);  // three processes and the server
  for (pid_t pid : descendants)
    CHECK(test::eventually(5000ms, [&] { return !test::running(pid); }));
  for (pid_t pid : descendants)
    if (test::running(pid))
      ::kill(pid, SIGKILL);  // the check failed: leave nothing behind
}
