// Logging to stderr, for events a user or operator should see (a peer broke the
// protocol, a message could not be delivered, a child was killed). The level comes from the
// environment: MPROC_LOG=error|warn|info|debug (default warn).
#pragma once

#include <sstream>
#include <string>

namespace mproc::log {

enum class level { error = 0, warn = 1, info = 2, debug = 3 };

bool enabled(level l);
void write(level l, const std::string& text);
// Prefix of every line: "mproc[pid name]".
void set_process_name(const std::string& name);

template <class... Ts>
void at(level l, const Ts&... xs) {
  if (!enabled(l))
    return;
  std::ostringstream out;
  (out << ... << xs);
  write(l, out.str());
}

template <class... Ts>
void error(const Ts&... xs) { at(level::error, xs...); }
template <class... Ts>
void warn(const Ts&... xs) { at(level::warn, xs...); }
template <class... Ts>
void info(const Ts&... xs) { at(level::info, xs...); }
template <class... Ts>
void debug(const Ts&... xs) { at(level::debug, xs...); }

} // namespace mproc::log
