#include "json.hpp"

#include <cmath>
#include <cstdio>
#include <ostream>

namespace mproc::cli {

namespace {

// The length of the valid UTF-8 sequence at s[i], or 0 (JSON text must be UTF-8).
std::size_t utf8_length(const std::string& s, std::size_t i) {
  auto b = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
  auto c = b(i);
  std::size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
  if (n == 0 || i + n > s.size() || (n == 2 && c < 0xc2) || (n == 4 && c > 0xf4))
    return 0;
  for (std::size_t k = 1; k < n; ++k)
    if ((b(i + k) >> 6) != 2)
      return 0;
  if (n == 3 && ((c == 0xe0 && b(i + 1) < 0xa0) || (c == 0xed && b(i + 1) > 0x9f)))
    return 0;  // overlong, or a surrogate
  if (n == 4 && ((c == 0xf0 && b(i + 1) < 0x90) || (c == 0xf4 && b(i + 1) > 0x8f)))
    return 0;  // overlong, or beyond U+10FFFF
  return n;
}

void write_string(std::ostream& out, const std::string& s) {
  out << '"';
  for (std::size_t i = 0; i < s.size();) {
    auto n = utf8_length(s, i);
    if (n == 0) {
      out << "\\ufffd";  // not UTF-8: the replacement character
      ++i;
      continue;
    }
    if (n > 1) {
      out.write(s.data() + i, static_cast<std::streamsize>(n));
      i += n;
      continue;
    }
    auto c = static_cast<unsigned char>(s[i++]);
    switch (c) {
      case '"': out << "\\\""; break;
      case '\\': out << "\\\\"; break;
      case '\n': out << "\\n"; break;
      case '\r': out << "\\r"; break;
      case '\t': out << "\\t"; break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out << buf;
        } else {
          out << static_cast<char>(c);
        }
    }
  }
  out << '"';
}

void newline(std::ostream& out, int indent) {
  out << '\n' << std::string(static_cast<std::size_t>(indent) * 2, ' ');
}

} // namespace

void write_json(std::ostream& out, const value& v, int indent) {
  struct visitor {
    std::ostream& out;
    int indent;
    void operator()(std::monostate) const { out << "null"; }
    void operator()(bool b) const { out << (b ? "true" : "false"); }
    void operator()(std::int64_t i) const { out << i; }
    void operator()(std::uint64_t u) const { out << u; }
    void operator()(double d) const {
      if (!std::isfinite(d)) {
        out << "null";  // JSON has no NaN or infinity
        return;
      }
      char buf[32];
      std::snprintf(buf, sizeof buf, "%.17g", d);
      out << buf;
    }
    void operator()(const std::string& s) const { write_string(out, s); }
    void operator()(const mproc::bytes& b) const {
      static const char* hex = "0123456789abcdef";
      std::string s;
      for (auto byte : b) {
        auto x = static_cast<unsigned char>(byte);
        s += hex[x >> 4];
        s += hex[x & 15];
      }
      write_string(out, s);
    }
    void operator()(const value::array_t& a) const {
      if (a.empty()) {
        out << "[]";
        return;
      }
      out << '[';
      for (std::size_t i = 0; i < a.size(); ++i) {
        out << (i ? "," : "");
        newline(out, indent + 1);
        write_json(out, a[i], indent + 1);
      }
      newline(out, indent);
      out << ']';
    }
    void operator()(const value::map_t& m) const {
      if (m.empty()) {
        out << "{}";
        return;
      }
      out << '{';
      for (std::size_t i = 0; i < m.size(); ++i) {
        out << (i ? "," : "");
        newline(out, indent + 1);
        const auto& key = m[i].first;
        write_string(out, key.type() == value::kind::string ? key.as<std::string>() : key.repr());
        out << ": ";
        write_json(out, m[i].second, indent + 1);
      }
      newline(out, indent);
      out << '}';
    }
  };
  std::visit(visitor{out, indent}, v.raw());
}

} // namespace mproc::cli
