#include "mproc/runtime/log.hpp"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>

namespace mproc::log {

namespace {

level configured() {
  static const level l = [] {
    const char* env = std::getenv("MPROC_LOG");
    if (env == nullptr)
      return level::warn;
    if (std::strcmp(env, "error") == 0)
      return level::error;
    if (std::strcmp(env, "info") == 0)
      return level::info;
    if (std::strcmp(env, "debug") == 0)
      return level::debug;
    return level::warn;
  }();
  return l;
}

std::mutex name_mtx;
std::string process_name = "MainProcess";

} // namespace

bool enabled(level l) {
  return l <= configured();
}

void set_process_name(const std::string& name) {
  std::lock_guard guard{name_mtx};
  process_name = name;
}

void write(level l, const std::string& text) {
  static const char* names[] = {"error", "warn", "info", "debug"};
  std::string line;
  {
    std::lock_guard guard{name_mtx};
    line = "mproc[" + std::to_string(::getpid()) + " " + process_name + "] "
           + names[static_cast<int>(l)] + ": " + text + "\n";
  }
  // One write(2), so lines from several processes sharing stderr do not interleave.
  [[maybe_unused]] auto n = ::write(STDERR_FILENO, line.data(), line.size());
}

} // namespace mproc::log
