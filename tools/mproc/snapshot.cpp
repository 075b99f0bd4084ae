#include "snapshot.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <type_traits>
#include <variant>

namespace mproc::cli {

namespace {

const value nothing;
const value::array_t no_list;

} // namespace

const value& field(const value& map, const char* key) {
  const value* v = map.find(key);
  return v ? *v : nothing;
}

std::string text(const value& map, const char* key) {
  const auto& v = field(map, key);
  if (v.type() != value::kind::string)
    return {};
  // What a process names itself reaches the terminal: no control characters (escapes), C0,
  // DEL, or C1 (U+0080-U+009F, CSI among them, two bytes in UTF-8) alike.
  auto s = v.as<std::string>();
  for (std::size_t i = 0; i < s.size(); ++i) {
    auto c = static_cast<unsigned char>(s[i]);
    auto next = i + 1 < s.size() ? static_cast<unsigned char>(s[i + 1]) : 0;
    if (c < 0x20 || c == 0x7f)
      s[i] = '?';
    else if (c == 0xc2 && next >= 0x80 && next <= 0x9f)
      s.replace(i, 2, "?");
  }
  return s;
}

// A report's number whatever it holds (a bool, a uint64 past INT64_MAX, a float that is
// not finite): a field of an unexpected kind must not end the whole listing.
double real(const value& map, const char* key) {
  const auto& v = field(map, key);
  auto x = std::visit(
    [](const auto& x) -> double {
      using T = std::decay_t<decltype(x)>;
      if constexpr (std::is_same_v<T, bool> || std::is_arithmetic_v<T>)
        return static_cast<double>(x);
      else
        return 0.0;
    },
    v.raw());
  return std::isfinite(x) ? x : 0.0;  // the renderers make ints of it
}

std::int64_t integer(const value& map, const char* key) {
  const auto& v = field(map, key);
  if (auto i = std::get_if<std::int64_t>(&v.raw()))
    return *i;
  auto x = real(map, key);
  constexpr double most = 9e18;  // below INT64_MAX, which a double does not hold exactly
  if (!std::isfinite(x))
    return 0;
  return static_cast<std::int64_t>(std::clamp(x, -most, most));
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
