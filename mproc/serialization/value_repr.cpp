// A value printed as Python's repr() prints it (value.hpp): floats in their shortest form,
// strings and bytes in the quotes and escapes Python chooses, containers element by element.
#include "mproc/serialization/value.hpp"

#include <charconv>
#include <cmath>
#include <cstring>
#include <ostream>

namespace mproc {

namespace {

// Python's float repr: the shortest digits that read back the same, positional from 1e-4 up
// to below 1e16, scientific with a two-digit exponent outside.
void append_float(std::string& out, double x) {
  if (std::isnan(x)) {
    out += "nan";
    return;
  }
  if (std::isinf(x)) {
    out += x < 0 ? "-inf" : "inf";
    return;
  }
  char buf[64];
  auto end = std::to_chars(buf, buf + sizeof buf, x, std::chars_format::scientific).ptr;
  std::string_view sci{buf, static_cast<std::size_t>(end - buf)};  // "-1.25e+03"
  if (sci.front() == '-') {
    out += '-';
    sci.remove_prefix(1);
  }
  auto e_at = sci.find('e');
  std::string digits{sci.substr(0, e_at)};
  if (digits.size() > 1)
    digits.erase(1, 1);  // the '.'
  int exp = 0;
  std::from_chars(sci.data() + e_at + (sci[e_at + 1] == '+' ? 2 : 1), sci.data() + sci.size(), exp);
  if (exp < -4 || exp >= 16) {
    out += digits[0];
    if (digits.size() > 1)
      out.append(".").append(digits, 1);
    out += exp < 0 ? "e-" : "e+";
    auto mag = std::to_string(exp < 0 ? -exp : exp);
    if (mag.size() < 2)
      out += '0';
    out += mag;
    return;
  }
  if (exp < 0) {
    out.append("0.").append(static_cast<std::size_t>(-exp - 1), '0').append(digits);
    return;
  }
  auto whole = static_cast<std::size_t>(exp) + 1;
  if (digits.size() <= whole) {
    out.append(digits).append(whole - digits.size(), '0').append(".0");
    return;
  }
  out.append(digits, 0, whole).append(".").append(digits, whole);
}

// Length of the UTF-8 sequence starting at s[i] and its code point; 0 when it is not valid.
std::size_t utf8_at(std::string_view s, std::size_t i, char32_t& cp) {
  auto b = [&](std::size_t k) { return static_cast<unsigned char>(s[i + k]); };
  auto n = b(0) >= 0xf0 ? 4 : b(0) >= 0xe0 ? 3 : b(0) >= 0xc0 ? 2 : 0;
  if (n == 0 || b(0) > 0xf4 || i + static_cast<std::size_t>(n) > s.size())
    return 0;
  cp = b(0) & (0x7f >> n);
  for (int k = 1; k < n; ++k) {
    if ((b(static_cast<std::size_t>(k)) & 0xc0) != 0x80)
      return 0;
    cp = (cp << 6) | (b(static_cast<std::size_t>(k)) & 0x3f);
  }
  static constexpr char32_t least[] = {0, 0, 0x80, 0x800, 0x10000};
  if (cp < least[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
    return 0;
  return static_cast<std::size_t>(n);
}

void append_hex_escape(std::string& out, unsigned x) {
  static constexpr char hex[] = "0123456789abcdef";
  out += "\\x";
  out += hex[(x >> 4) & 15];
  out += hex[x & 15];
}

// The body of a str or bytes repr, in quotes chosen as Python chooses them. A str's text
// passes through except what Python escapes below U+00AE (controls, NBSP, soft hyphen);
// bytes that are not UTF-8 show as \xNN.
void append_quoted(std::string& out, std::string_view s, bool is_bytes) {
  bool has_single = s.find('\'') != s.npos;
  char quote = has_single && s.find('"') == s.npos ? '"' : '\'';
  if (is_bytes)
    out += 'b';
  out += quote;
  for (std::size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    auto u = static_cast<unsigned char>(c);
    if (c == quote || c == '\\') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (u < 0x20 || u == 0x7f) {
      append_hex_escape(out, u);
    } else if (u < 0x80) {
      out += c;
    } else if (char32_t cp = 0; !is_bytes) {
      auto n = utf8_at(s, i, cp);
      if (n == 0) {
        append_hex_escape(out, u);
      } else if (cp <= 0xa0 || cp == 0xad) {
        append_hex_escape(out, static_cast<unsigned>(cp));
        i += n - 1;
      } else {
        out.append(s.substr(i, n));
        i += n - 1;
      }
    } else {
      append_hex_escape(out, u);
    }
  }
  out += quote;
}

void append_repr(std::string& out, const value& v);

struct repr_visitor {
  std::string& out;
  void operator()(std::monostate) const { out += "None"; }
  void operator()(bool x) const { out += x ? "True" : "False"; }
  void operator()(std::int64_t x) const { out += std::to_string(x); }
  void operator()(std::uint64_t x) const { out += std::to_string(x); }
  void operator()(double x) const { append_float(out, x); }
  void operator()(const std::string& x) const { append_quoted(out, x, false); }
  void operator()(const mproc::bytes& x) const {
    append_quoted(out, {x.data(), x.size()}, true);
  }
  void operator()(const value::array_t& xs) const {
    out += '[';
    for (std::size_t i = 0; i < xs.size(); ++i) {
      if (i > 0)
        out += ", ";
      append_repr(out, xs[i]);
    }
    out += ']';
  }
  void operator()(const value::map_t& xs) const {
    out += '{';
    for (std::size_t i = 0; i < xs.size(); ++i) {
      if (i > 0)
        out += ", ";
      append_repr(out, xs[i].first);
      out += ": ";
      append_repr(out, xs[i].second);
    }
    out += '}';
  }
};

void append_repr(std::string& out, const value& v) { std::visit(repr_visitor{out}, v.raw()); }

} // namespace

std::string value::repr() const {
  std::string out;
  append_repr(out, *this);
  return out;
}

std::ostream& operator<<(std::ostream& os, const value& v) { return os << v.repr(); }

} // namespace mproc
