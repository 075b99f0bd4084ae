// subprocess: run/call/check_call/check_output and popen with communicate; returncodes,
// timeouts, bad input named in the caller; the node reaps every program, gives it none of
// its descriptors, and takes it along when its process dies (unless in a session of its own).
#include "mproc/actors/subprocess.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <thread>
#include <set>

#include <caf/blocking_actor.hpp>
#include <caf/event_based_actor.hpp>

#include <catch2/catch.hpp>

#include "mproc/actors/queue.hpp"
#include "mproc/runtime/actor_registry.hpp"
#include "mproc/runtime/internal/commands.hpp"
#include "mproc/runtime/node.hpp"
#include "support.hpp"

using namespace std::chrono_literals;
namespace sp = mproc::subprocess;
using mproc::errc;
using test::code_of;

namespace {

std::string what_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

std::set<std::string> descriptors_of(pid_t pid) {
  std::set<std::string> out;
  for (const auto& e : std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd"))
    out.insert(e.path().filename().string());
  return out;
}

// Starts two sleeps, one in a session of its own, tells their pids, and waits to be killed.
void sleeps_and_waits(caf::blocking_actor*, mproc::queue<std::int32_t> pids) {
  sp::popen with_us{{"sleep", "300"}};
  sp::popen own_session{{"sleep", "300"}, {.start_new_session = true}};
  pids.put(with_us.pid());
  pids.put(own_session.pid());
  pids.flush(10s);
  std::this_thread::sleep_for(300s);
}

// Answers what `ulimit -n` says in a program this child starts.
caf::behavior child_ulimit(caf::event_based_actor*) {
  return {[](caf::get_atom) { return sp::check_output({"sh", "-c", "ulimit -n"}); }};
}

} // namespace

MPROC_ACTOR(sleeps_and_waits);
MPROC_ACTOR(child_ulimit);

TEST_CASE("run captures stdout and stderr and gives the returncode") {
  test::scoped_node node;
  auto r = sp::run({"sh", "-c", "echo out; echo err >&2; exit 3"}, {.capture_output = true});
  CHECK(r.returncode == 3);
  CHECK(r.stdout_ == "out\n");
  CHECK(r.stderr_ == "err\n");
  CHECK(r.args == std::vector<std::string>{"sh", "-c", "echo out; echo err >&2; exit 3"});
  CHECK(code_of([&] { r.check_returncode(); }) == errc::command_failed);
  auto merged = sp::run({"sh", "-c", "echo a; echo b >&2"},
                        {.stdout_ = sp::pipe, .stderr_ = sp::stdout_stream});
  CHECK(merged.stdout_ == "a\nb\n");
}

TEST_CASE("check_output feeds input to sort and returns its output") {
  test::scoped_node node;
  CHECK(sp::check_output({"sort"}, {.input = "pear\napple\nfig\n"}) == "apple\nfig\npear\n");
  CHECK(sp::check_output({"sh", "-c", "echo $GREETING"}, {.env = {{{"GREETING", "hi"}}}})
        == "hi\n");
  CHECK(sp::check_output({"pwd"}, {.cwd = "/"}) == "/\n");
}

TEST_CASE("call gives the code; check_call and check_output throw called_process_error") {
  test::scoped_node node;
  CHECK(sp::call({"false"}) == 1);
  CHECK(sp::call({"true"}) == 0);
  try {
    sp::check_call({"sh", "-c", "exit 4"});
    FAIL("no exception");
  } catch (const sp::called_process_error& e) {
    CHECK(e.code() == errc::command_failed);
    CHECK(e.returncode == 4);
    CHECK(e.cmd == std::vector<std::string>{"sh", "-c", "exit 4"});
    CHECK(std::string{e.what()}.find("exit status 4") != std::string::npos);
  }
  try {
    sp::check_output({"sh", "-c", "echo partial; exit 2"});
    FAIL("no exception");
  } catch (const sp::called_process_error& e) {
    CHECK(e.output == "partial\n");
  }
}

TEST_CASE("communicate moves more than a pipe holds, both ways at once, without stalling") {
  test::scoped_node node;
  std::string input(8 << 20, 'x');
  for (std::size_t i = 0; i < input.size(); i += 4096)
    input[i] = static_cast<char>('a' + i / 4096 % 26);
  sp::popen p{{"sh", "-c", "cat; head -c 3000000 /dev/zero >&2"},
              {.stdin_ = sp::pipe, .stdout_ = sp::pipe, .stderr_ = sp::pipe}};
  auto [out, err] = p.communicate(input, 60s);
  CHECK(out == input);
  CHECK(err.size() == 3000000);
  CHECK(p.returncode() == 0);
}

TEST_CASE("a timeout leaves popen's program running; run kills and reaps it") {
  test::scoped_node node;
  sp::popen p{{"sleep", "30"}, {.stdout_ = sp::pipe}};
  CHECK(code_of([&] { p.communicate({}, 200ms); }) == errc::timeout);
  CHECK_FALSE(p.poll().has_value());
  CHECK(code_of([&] { p.wait(100ms); }) == errc::timeout);
  p.kill();
  CHECK(p.wait() == -SIGKILL);
  pid_t timed_out = 0;
  try {
    sp::run({"sh", "-c", "echo $$; exec sleep 30"}, {.capture_output = true, .timeout = 2s});
  } catch (const sp::timeout_expired& e) {
    if (!e.output.empty())
      timed_out = std::stoi(e.output);  // the program's pid, printed before the timeout
  }
  REQUIRE(timed_out > 0);
  auto ours = test::children();  // run() killed and reaped it before throwing
  CHECK(std::find(ours.begin(), ours.end(), timed_out) == ours.end());
  CHECK_FALSE(test::running(timed_out));
  sp::popen t{{"sleep", "30"}};
  t.terminate();
  CHECK(t.wait() == -SIGTERM);
}

TEST_CASE("a timeout of seconds::max() or hours::max() waits for the program, as none would") {
  test::scoped_node node;
  // "sleep 1": a wait that overflowed into the past would fail before the program ends.
  auto r = sp::run({"sh", "-c", "sleep 1; echo done"},
                   {.capture_output = true, .timeout = std::chrono::seconds::max()});
  CHECK(r.returncode == 0);
  CHECK(r.stdout_ == "done\n");
  sp::popen p{{"sh", "-c", "sleep 1; echo done"}, {.stdin_ = sp::pipe, .stdout_ = sp::pipe}};
  p.write_stdin("x", std::chrono::hours::max());
  CHECK(p.communicate({}, std::chrono::hours::max()).first == "done\n");
  sp::popen q{{"sleep", "1"}};
  CHECK(q.wait(std::chrono::seconds::max()) == 0);
}

TEST_CASE("communicate after a timeout goes on with the first input; a flood still times out") {
  test::scoped_node node;
  // More than a pipe holds: the first call cannot have written it all before its timeout.
  std::string input(1 << 20, 'x');
  for (std::size_t i = 0; i < input.size(); i += 4096)
    input[i] = static_cast<char>('a' + i / 4096 % 26);
  sp::popen p{{"sh", "-c", "sleep 1; cat"}, {.stdin_ = sp::pipe, .stdout_ = sp::pipe}};
  CHECK(code_of([&] { p.communicate(input, 100ms); }) == errc::timeout);
  CHECK(code_of([&] { p.communicate("other", 30s); }) == errc::bad_arguments);  // as Python
  CHECK(p.communicate({}, 30s).first == input);
  sp::popen flood{{"yes"}, {.stdout_ = sp::pipe}};
  CHECK(code_of([&] { flood.communicate({}, 300ms); }) == errc::timeout);
  flood.kill();
  CHECK(flood.wait() == -SIGKILL);
}

TEST_CASE("a program gets the descriptor limit the root started with, not the raised one") {
  test::scoped_node node;
  const char* original = std::getenv("MPROC_NOFILE");
  REQUIRE(original != nullptr);
  auto want = std::string{original} + "\n";
  CHECK(sp::check_output({"sh", "-c", "ulimit -n"}) == want);
  CHECK(sp::check_output({"sh", "-c", "echo ${MPROC_NOFILE:-unset}"}) == "unset\n");
  auto child = node->spawn_process("child_ulimit", {});
  CHECK(node->request<std::string>(child.actor(), 10s, caf::get_atom::value) == want);
}

TEST_CASE("a missing program, a file that is not executable, a bad cwd: errors naming them") {
  test::scoped_node node;
  auto missing = what_of([] { sp::call({"no-such-program-here"}); });
  CHECK(missing.find("no-such-program-here") != std::string::npos);
  CHECK(missing.find("No such file") != std::string::npos);
  CHECK(code_of([] { sp::call({"no-such-program-here"}); }) == errc::spawn_failed);
  auto relative = what_of([] { sp::call({"./no/such/program"}); });
  CHECK(relative.find("./no/such/program") != std::string::npos);
  CHECK(relative.find("No such file") != std::string::npos);

  auto path = std::filesystem::temp_directory_path() / ("mproc-not-exec-" + std::to_string(::getpid()));
  { std::ofstream{path} << "#!/bin/sh\necho hi\n"; }
  ::chmod(path.c_str(), 0644);
  auto denied = what_of([&] { sp::call({path.string()}); });
  std::filesystem::remove(path);
  CHECK(denied.find(path.string()) != std::string::npos);
  CHECK(denied.find("Permission denied") != std::string::npos);

  auto bad_cwd = what_of([] { sp::call({"true"}, {.cwd = "/no/such/directory"}); });
  CHECK(bad_cwd.find("/no/such/directory") != std::string::npos);
  CHECK(bad_cwd.find("No such file") != std::string::npos);
  CHECK(code_of([] { sp::call({}); }) == errc::bad_arguments);
  CHECK(code_of([] { sp::popen({"true"}, {.input = "x"}); }) == errc::bad_arguments);
  CHECK(test::eventually(5s, [] { return test::zombie_children() == 0; }));
}

TEST_CASE("a relative PATH entry is looked up under cwd, where the program runs") {
  test::scoped_node node;
  auto dir = std::filesystem::temp_directory_path() / ("mproc-cwd-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir / "bin");
  auto tool = dir / "bin" / "mproc-tool";
  { std::ofstream{tool} << "#!/bin/sh\necho found\n"; }
  ::chmod(tool.c_str(), 0755);
  // As Python's exec after the chdir: "bin" is <cwd>/bin, not the caller's ./bin.
  std::map<std::string, std::string> env{{"PATH", "bin"}};
  auto out = test::failure_of([&] {
    CHECK(sp::check_output({"mproc-tool"}, {.cwd = dir.string(), .env = env}) == "found\n");
  });
  std::filesystem::remove_all(dir);
  CHECK(out.empty());
}

TEST_CASE("a program gets descriptors 0-2 and none of this process's others") {
  test::scoped_node node;
  int leaky = ::open("/dev/null", O_RDONLY);  // not close-on-exec, as careless code does
  REQUIRE(leaky >= 3);
  sp::popen p{{"sleep", "30"}, {.stdout_ = sp::pipe}};
  // exec closes the close-on-exec descriptors one by one after the report pipe (which tells
  // the caller that the exec happened): the list settles an instant later.
  CHECK(test::eventually(5s, [&] {
    return descriptors_of(p.pid()) == std::set<std::string>{"0", "1", "2"};
  }));
  ::close(leaky);
  p.kill();
  p.wait();
}

TEST_CASE("dropped handles leave no zombie; the node's end takes its programs along") {
  pid_t sleeper = 0;
  {
    test::scoped_node node;
    for (int i = 0; i < 5; ++i)
      sp::popen{{"true"}};  // dropped at once, never waited for
    CHECK(test::eventually(5s, [] { return test::zombie_children() == 0; }));
    sp::popen p{{"sleep", "300"}};
    sleeper = p.pid();
    CHECK(test::running(sleeper));
  }
  CHECK_FALSE(test::running(sleeper));
  CHECK(test::zombie_children() == 0);
}

TEST_CASE("a program dies with its process killed from outside; its own session outlives it") {
  test::scoped_node node;
  mproc::queue<std::int32_t> pids{*node};
  auto child = node->spawn_process("sleeps_and_waits", {}, pids);
  auto with_us = pids.get(10s);
  auto own_session = pids.get(10s);
  REQUIRE(test::running(with_us));
  REQUIRE(test::running(own_session));
  ::kill(child.pid(), SIGKILL);
  REQUIRE(child.join(10s));
  CHECK(test::eventually(10s, [&] { return !test::running(with_us); }));
  CHECK(test::running(own_session));
  ::kill(own_session, SIGKILL);
  CHECK(test::eventually(10s, [&] { return !test::running(own_session); }));
}

TEST_CASE("poll() gives the returncode as soon as exit_fd() is readable") {
  test::scoped_node node;
  int early = 0;
  for (int i = 0; i < 200; ++i) {
    sp::popen p{{"sh", "-c", "exit 3"}};
    pollfd ready{p.exit_fd(), POLLIN, 0};
    REQUIRE(::poll(&ready, 1, 10000) == 1);
    auto code = p.poll();  // before the node's loop may have seen the same end
    early += code ? 0 : 1;
    if (code)
      CHECK(*code == 3);
  }
  CHECK(early == 0);
}

TEST_CASE("wait(0ms) gives the returncode as soon as exit_fd() is readable") {
  // It waited for the node's loop to reap the program: timeout_expired for one that ended.
  test::scoped_node node;
  int timed_out = 0;
  for (int i = 0; i < 200; ++i) {
    sp::popen p{{"sh", "-c", "exit 3"}};
    pollfd ready{p.exit_fd(), POLLIN, 0};
    REQUIRE(::poll(&ready, 1, 10000) == 1);
    std::optional<int> code;
    try {
      code = p.wait(0ms);
    } catch (const sp::timeout_expired&) {
      ++timed_out;
    }
    if (code)
      CHECK(*code == 3);
  }
  CHECK(timed_out == 0);
}

TEST_CASE("a NUL in an argument or the environment, or '=' in a name, is refused by name") {
  test::scoped_node node;
  CHECK(code_of([] { sp::run({"echo", std::string("a\0b", 3)}); }) == errc::bad_arguments);
  CHECK(code_of([] { sp::run({std::string("ec\0ho", 5)}); }) == errc::bad_arguments);
  CHECK(code_of([] { sp::run({"true"}, {.env = std::map<std::string, std::string>{{"A=B", "c"}}}); })
        == errc::bad_arguments);
  CHECK(code_of([] { sp::run({"true"}, {.env = std::map<std::string, std::string>{{"", "c"}}}); })
        == errc::bad_arguments);
  CHECK(code_of([] {
          sp::run({"true"}, {.env = std::map<std::string, std::string>{{"A", std::string("x\0y", 3)}}});
        }) == errc::bad_arguments);
  CHECK(code_of([] { sp::run({"true"}, {.cwd = std::string("/\0tmp", 5)}); }) == errc::bad_arguments);
  CHECK(test::zombie_children() == 0);
}

TEST_CASE("write_stdin feeds a program; to one that stopped reading it throws closed, no SIGPIPE") {
  test::scoped_node node;
  sp::popen cat{{"cat"}, {.stdin_ = sp::pipe, .stdout_ = sp::pipe}};
  cat.write_stdin("hello ");
  cat.write_stdin("world", 5s);
  cat.close_stdin();
  CHECK(cat.communicate({}, 10s).first == "hello world");

  sp::popen gone{{"true"}, {.stdin_ = sp::pipe}};
  gone.wait();
  CHECK(code_of([&] { gone.write_stdin("x"); }) == errc::closed);
  gone.close_stdin();
  CHECK(code_of([&] { gone.write_stdin("x"); }) == errc::closed);

  sp::popen stalled{{"sleep", "60"}, {.stdin_ = sp::pipe}};
  CHECK(code_of([&] { stalled.write_stdin(std::string(1 << 20, 'x'), 200ms); }) == errc::timeout);
  stalled.kill();
  stalled.wait();
}

TEST_CASE("where close_range cannot, every open descriptor above 2 is marked close-on-exec") {
  // Hundreds of them: /proc/self/fd is read in several calls of getdents64.
  std::vector<int> fds;
  for (int i = 0; i < 300; ++i) {
    int p[2];
    REQUIRE(::pipe(p) == 0);  // no O_CLOEXEC: what a program's own code may forget
    fds.push_back(p[0]);
    fds.push_back(p[1]);
  }
  REQUIRE(mproc::detail::mark_each_cloexec());
  int unmarked = 0;
  for (int fd : fds)
    unmarked += (::fcntl(fd, F_GETFD) & FD_CLOEXEC) == 0 ? 1 : 0;
  CHECK(unmarked == 0);
  CHECK((::fcntl(STDERR_FILENO, F_GETFD) & FD_CLOEXEC) == 0);  // 0-2 stay as they are
  for (int fd : fds)
    ::close(fd);
}
