#include "mproc/runtime/process_key.hpp"

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include <dirent.h>
#include <pthread.h>
#include <unistd.h>

namespace mproc {

namespace {

struct stat_fields {
  char state = 0;
  std::uint64_t start_time = 0;
};

// /proc/<pid>/stat: "pid (comm) state ppid ... starttime ..."; comm may hold spaces and
// parentheses, so fields are counted from the last ')'. starttime is field 22, state 3.
bool read_stat(pid_t pid, stat_fields& out) {
  char path[40];
  std::snprintf(path, sizeof path, "/proc/%d/stat", static_cast<int>(pid));
  std::FILE* f = std::fopen(path, "re");
  if (f == nullptr)
    return false;
  char line[1024];
  auto n = std::fread(line, 1, sizeof line - 1, f);
  std::fclose(f);
  line[n] = '\0';
  const char* p = std::strrchr(line, ')');
  if (p == nullptr)
    return false;
  p += 2;  // ") "
  out.state = *p;
  for (int field = 3; field < 22; ++field) {
    p = std::strchr(p, ' ');
    if (p == nullptr)
      return false;
    ++p;
  }
  out.start_time = std::strtoull(p, nullptr, 10);
  return true;
}

// A process whose first thread ended (pthread_exit in main) shows 'Z' while its other
// threads run: they are listed beside it in /proc/<pid>/task.
bool other_threads_run(pid_t pid) {
  char path[40];
  std::snprintf(path, sizeof path, "/proc/%d/task", static_cast<int>(pid));
  DIR* dir = ::opendir(path);
  if (dir == nullptr)
    return false;
  int tasks = 0;
  while (auto* e = ::readdir(dir))
    if (e->d_name[0] != '.')
      ++tasks;
  ::closedir(dir);
  return tasks > 1;
}

process_key make_key(pid_t pid, std::uint64_t start_time) {
  return (static_cast<std::uint64_t>(static_cast<std::uint32_t>(pid)) << 32)
         | (start_time & 0xffffffffu);
}

std::atomic<process_key> cached{0};

void forget_in_child() { cached.store(0, std::memory_order_relaxed); }

process_key compute() {
  static const bool hooked = (::pthread_atfork(nullptr, nullptr, forget_in_child), true);
  (void)hooked;
  pid_t pid = ::getpid();
  stat_fields st;
  if (!read_stat(pid, st))
    st.start_time = 0;  // no /proc, or no descriptor left (EMFILE): the pid alone
  return make_key(pid, st.start_time);
}

} // namespace

process_key this_process_key() {
  auto key = cached.load(std::memory_order_relaxed);
  if (key == 0) {
    key = compute();
    cached.store(key, std::memory_order_relaxed);
  }
  return key;
}

bool process_running(process_key key) {
  pid_t pid = pid_of(key);
  if (pid <= 0)
    return false;
  if (::kill(pid, 0) != 0 && errno == ESRCH)
    return false;
  stat_fields st;
  if (!read_stat(pid, st))
    return ::kill(pid, 0) == 0 || errno == EPERM;  // no /proc: the pid is all there is
  if (st.state == 'X' || (st.state == 'Z' && !other_threads_run(pid)))
    return false;
  // A key made without its start time (see compute()) is checked by its pid: compared with
  // the real one, its holder would be taken for dead while it runs, and its lock taken over.
  if ((key & 0xffffffffu) == 0)
    return true;
  return make_key(pid, st.start_time) == key;
}

namespace detail {

void forget_process_key() { forget_in_child(); }

bool process_start_ticks(pid_t pid, std::uint64_t& ticks) {
  stat_fields f;
  if (!read_stat(pid, f))
    return false;
  ticks = f.start_time;
  return true;
}

} // namespace detail

} // namespace mproc
