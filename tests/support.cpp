#include "support.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include <catch2/catch.hpp>

namespace test {

mproc::node make_node(mproc::node_options options) {
  static char name[] = "test";
  static char* argv[] = {name, nullptr};
  return mproc::node{1, argv, std::move(options)};
}

scoped_node::scoped_node(mproc::node_options options) : node_(make_node(std::move(options))) {}

scoped_node::~scoped_node() {
  for (auto& child : node_.active_children())
    child.kill();
}

namespace {

// Fields 3 (state) and 4 (ppid) of /proc/<pid>/stat; the name in field 2 may hold spaces.
bool read_stat(pid_t pid, char& state, pid_t& ppid) {
  std::ifstream in{"/proc/" + std::to_string(pid) + "/stat"};
  std::string line;
  if (!std::getline(in, line))
    return false;
  auto close = line.rfind(')');
  if (close == std::string::npos)
    return false;
  std::istringstream rest{line.substr(close + 2)};
  return static_cast<bool>(rest >> state >> ppid);
}

} // namespace

std::vector<pid_t> children(char wanted_state) {
  std::vector<pid_t> found;
  DIR* proc = ::opendir("/proc");
  while (auto* entry = ::readdir(proc)) {
    pid_t pid = static_cast<pid_t>(std::atoi(entry->d_name));
    char state;
    pid_t ppid;
    if (pid > 0 && read_stat(pid, state, ppid) && ppid == ::getpid()
        && (wanted_state == 0 || state == wanted_state))
      found.push_back(pid);
  }
  ::closedir(proc);
  return found;
}

std::size_t entries(const char* dir) {
  std::size_t n = 0;
  DIR* d = ::opendir(dir);
  while (d != nullptr && ::readdir(d) != nullptr)
    ++n;
  if (d != nullptr)
    ::closedir(d);
  return n;
}

int zombie_children() {
  return static_cast<int>(children('Z').size());
}

bool running(pid_t pid) {
  char state;
  pid_t ppid;
  return read_stat(pid, state, ppid) && state != 'Z' && state != 'X';
}

mproc::errc code_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const mproc::error& e) {
    return e.code();
  }
  return mproc::errc::none;
}

mproc::error error_of(const std::function<void()>& f, std::source_location where) {
  try {
    f();
  } catch (const mproc::error& e) {
    return e;
  }
  FAIL("no mproc::error was thrown by the call at " << where.file_name() << ":"
                                                     << where.line());
  return mproc::error{{}, ""};  // not reached: FAIL throws
}

std::string failure_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return {};
}

namespace {

// The state letter in a /proc/.../stat file ('R', 'S', 'T', ...), or 0 when unreadable.
char state_in(const std::string& stat_path) {
  std::ifstream stat{stat_path};
  std::string line;
  std::getline(stat, line);
  auto close = line.rfind(')');  // the name in parentheses may hold spaces
  return close == std::string::npos || close + 2 >= line.size() ? 0 : line[close + 2];
}

} // namespace

bool all_threads_stopped(pid_t pid) {
  auto dir = "/proc/" + std::to_string(pid) + "/task";
  DIR* tasks = ::opendir(dir.c_str());
  if (tasks == nullptr)
    return false;
  bool stopped = true;
  int seen = 0;
  while (auto* entry = ::readdir(tasks)) {
    if (entry->d_name[0] == '.')
      continue;
    ++seen;
    if (state_in(dir + "/" + entry->d_name + "/stat") != 'T')
      stopped = false;
  }
  ::closedir(tasks);
  return stopped && seen > 0;
}

char thread_state(pid_t tid) {
  return state_in("/proc/self/task/" + std::to_string(tid) + "/stat");
}

bool sleeping_in(pid_t tid, long syscall_nr) {
  long nr = -1;
  std::ifstream{"/proc/self/task/" + std::to_string(tid) + "/syscall"} >> nr;
  return nr == syscall_nr && thread_state(tid) == 'S';
}

bool eventually(std::chrono::milliseconds timeout, const std::function<bool()>& done) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!done()) {
    if (std::chrono::steady_clock::now() >= deadline)
      return false;
    std::this_thread::sleep_for(std::chrono::milliseconds{5});
  }
  return true;
}

scoped_env::scoped_env(const char* name, const char* value) : name_{name} {
  if (const char* old = std::getenv(name))
    old_ = old;
  ::setenv(name, value, 1);
}

scoped_env::~scoped_env() {
  if (old_)
    ::setenv(name_, old_->c_str(), 1);
  else
    ::unsetenv(name_);
}

stderr_capture::stderr_capture() {
  char path[] = "/tmp/mproc-stderr-XXXXXX";
  fd_ = ::mkostemp(path, O_CLOEXEC);  // children get stderr, not these
  path_ = path;
  saved_ = ::fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 0);
  ::dup2(fd_, STDERR_FILENO);
}

stderr_capture::~stderr_capture() {
  ::dup2(saved_, STDERR_FILENO);
  ::close(saved_);
  ::close(fd_);
  ::unlink(path_.c_str());
}

std::string stderr_capture::text() const {
  std::ifstream in{path_};
  std::stringstream all;
  all << in.rdbuf();
  return all.str();
}

} // namespace test
