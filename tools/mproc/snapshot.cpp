#include "snapshot.hpp"

#include <cstdio>
#include <cstring>

namespace mproc::cli {

namespace {

const value nothing;
const value::array_t no_list;

bool is_number(const value& v) {
  auto k = v.type();
  return k == value::kind::integer || k == value::kind::floating || k == value::kind::boolean;
}

} // namespace

const value& field(const value& map, const char* key) {
  const value* v = map.find(key);
  return v ? *v : nothing;
}

std::string text(const value& map, const char* key) {
  const auto& v = field(map, key);
  if (v.type() != value::kind::string)
    return {};
  // What a process names itself reaches the terminal: no control characters (escapes).
  auto s = v.as<std::string>();
  for (auto& c : s)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f)
      c = '?';
  return s;
}

std::int64_t integer(const value& map, const char* key) {
  const auto& v = field(map, key);
  if (v.type() == value::kind::integer)
    return v.as<std::int64_t>();
  return is_number(v) ? static_cast<std::int64_t>(v.as<double>()) : 0;
}

double real(const value& map, const char* key) {
  const auto& v = field(map, key);
  return is_number(v) ? v.as<double>() : 0.0;
}

const value::array_t& list(const value& map, const char* key) {
  const auto& v = field(map, key);
  return v.type() == value::kind::array ? std::get<value::array_t>(v.raw()) : no_list;
}

std::string human_bytes(double n) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (n >= 1024 && u < 4) {
    n /= 1024;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.1f %s", n, units[u]);
  return buf;
}

std::string human_seconds(double s) {
  char buf[32];
  if (s < 10)
    std::snprintf(buf, sizeof buf, "%.1f s", s);
  else if (s < 60)
    std::snprintf(buf, sizeof buf, "%.0f s", s);
  else if (s < 3600)
    std::snprintf(buf, sizeof buf, "%d min %d s", static_cast<int>(s) / 60, static_cast<int>(s) % 60);
  else
    std::snprintf(buf, sizeof buf, "%d h %d min", static_cast<int>(s) / 3600,
                  static_cast<int>(s) % 3600 / 60);
  return buf;
}

std::string exit_text(std::int64_t code) {
  if (code >= 0)
    return std::to_string(code);
  const char* name = ::sigabbrev_np(static_cast<int>(-code));
  return name ? std::string{"SIG"} + name : std::to_string(code);
}

} // namespace mproc::cli
