#include "mproc/serialization/value.hpp"

#include <charconv>
#include <cmath>
#include <cstring>
#include <ostream>
#include <stdexcept>

namespace mproc {

namespace {

// Python's type names, for error texts that read like Python's.
const char* python_name(value::kind k) {
  switch (k) {
    case value::kind::nil: return "NoneType";
    case value::kind::boolean: return "bool";
    case value::kind::integer: return "int";
    case value::kind::floating: return "float";
    case value::kind::string: return "str";
    case value::kind::bytes: return "bytes";
    case value::kind::array: return "list";
    case value::kind::map: return "dict";
  }
  return "?";
}

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

bool is_number(const value& v) {
  auto k = v.type();
  return k == value::kind::boolean || k == value::kind::integer || k == value::kind::floating;
}

// Numbers as Python orders them; NaN sorts after every number and equal to itself, so that
// a sort stays well-defined (Python's own result with NaNs is arbitrary).
static_assert(std::numeric_limits<long double>::digits >= 64,
              "comparing int64 with double exactly needs a 64-bit mantissa");

std::strong_ordering compare_numbers(const value& a, const value& b) {
  auto widen = [](const value& v) -> long double {  // 64 mantissa bits: every int64 exactly
    return std::visit(
      [](const auto& x) -> long double {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_arithmetic_v<T>)
          return static_cast<long double>(x);
        return 0;
      },
      v.raw());
  };
  if (auto ua = std::get_if<std::uint64_t>(&a.raw()), ub = std::get_if<std::uint64_t>(&b.raw());
      ua && ub)
    return *ua <=> *ub;
  auto x = widen(a), y = widen(b);
  bool nx = std::isnan(x), ny = std::isnan(y);
  if (nx || ny)
    return nx == ny ? std::strong_ordering::equal
                    : (nx ? std::strong_ordering::greater : std::strong_ordering::less);
  return x < y ? std::strong_ordering::less
               : (y < x ? std::strong_ordering::greater : std::strong_ordering::equal);
}

} // namespace

const char* to_string(value::kind k) {
  switch (k) {
    case value::kind::nil: return "nil";
    case value::kind::boolean: return "bool";
    case value::kind::integer: return "int";
    case value::kind::floating: return "float";
    case value::kind::string: return "str";
    case value::kind::bytes: return "bytes";
    case value::kind::array: return "array";
    case value::kind::map: return "map";
  }
  return "?";
}

value::kind value::type() const {
  switch (v_.index()) {
    case 0: return kind::nil;
    case 1: return kind::boolean;
    case 2:
    case 3: return kind::integer;
    case 4: return kind::floating;
    case 5: return kind::string;
    case 6: return kind::bytes;
    case 7: return kind::array;
    default: return kind::map;
  }
}

void value::set_unsigned(std::uint64_t x) {
  if (x <= static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
    v_ = static_cast<std::int64_t>(x);
  else
    v_ = x;
}

void value::throw_not(const char* wanted) const {
  throw std::invalid_argument(std::string{"mproc::value: wanted "} + wanted + ", holds "
                              + to_string(type()) + " " + repr());
}

std::int64_t value::as_int64() const {
  if (auto p = std::get_if<std::int64_t>(&v_))
    return *p;
  throw_not(std::holds_alternative<std::uint64_t>(v_) ? "a smaller integer" : "int");
}

std::uint64_t value::as_uint64() const {
  if (auto p = std::get_if<std::uint64_t>(&v_))
    return *p;
  if (auto p = std::get_if<std::int64_t>(&v_); p && *p >= 0)
    return static_cast<std::uint64_t>(*p);
  throw_not("a non-negative int");
}

const value* value::find(const value& key) const {
  const auto* m = std::get_if<map_t>(&v_);
  if (!m)
    return nullptr;
  for (const auto& [k, v] : *m)
    if (k == key)
      return &v;
  return nullptr;
}

std::string value::repr() const {
  std::string out;
  append_repr(out, *this);
  return out;
}

bool operator==(const value& a, const value& b) {
  if (is_number(a) && is_number(b)) {
    auto nan = [](const value& v) {
      auto d = std::get_if<double>(&v.v_);
      return d != nullptr && std::isnan(*d);
    };
    if (nan(a) || nan(b))
      return false;  // NaN equals nothing, as in Python
    return compare_numbers(a, b) == 0;
  }
  if (a.type() != b.type())
    return false;
  if (auto ma = std::get_if<value::map_t>(&a.v_)) {  // dicts compare without order
    auto& mb = std::get<value::map_t>(b.v_);
    if (ma->size() != mb.size())
      return false;
    for (auto& [k, v] : *ma) {
      bool found = false;
      for (auto& [k2, v2] : mb)
        if (k == k2) {
          found = v == v2;
          break;
        }
      if (!found)
        return false;
    }
    return true;
  }
  return a.v_ == b.v_;  // nil, str, bytes; arrays element by element through this operator
}

std::strong_ordering compare(const value& a, const value& b) {
  if (is_number(a) && is_number(b))
    return compare_numbers(a, b);
  auto k = a.type();
  if (k == b.type()) {
    if (k == value::kind::string)
      return std::get<std::string>(a.v_) <=> std::get<std::string>(b.v_);
    if (k == value::kind::bytes) {  // as unsigned bytes, as Python (char is signed on x86)
      auto& xa = std::get<mproc::bytes>(a.v_);
      auto& xb = std::get<mproc::bytes>(b.v_);
      auto n = std::min(xa.size(), xb.size());
      auto c = n == 0 ? 0 : std::memcmp(xa.data(), xb.data(), n);  // empty: data() may be null
      return c != 0 ? (c < 0 ? std::strong_ordering::less : std::strong_ordering::greater)
                    : xa.size() <=> xb.size();
    }
    if (k == value::kind::array) {  // Python: the first pair that is not == decides
      auto& xa = std::get<value::array_t>(a.v_);
      auto& xb = std::get<value::array_t>(b.v_);
      for (std::size_t i = 0; i < xa.size() && i < xb.size(); ++i) {
        if (xa[i] == xb[i])
          continue;
        if (auto c = compare(xa[i], xb[i]); c != 0)
          return c;
      }
      return xa.size() <=> xb.size();
    }
  }
  throw std::invalid_argument(std::string{"'<' not supported between instances of '"}
                              + python_name(k) + "' and '" + python_name(b.type()) + "'");
}

std::ostream& operator<<(std::ostream& os, const value& v) { return os << v.repr(); }

} // namespace mproc

namespace mproc::wire {

namespace {

struct encode_visitor {
  packer& pk;
  codec_state& st;
  void operator()(std::monostate) const { pk.pack_nil(); }
  void operator()(bool x) const { pk.pack(x); }
  void operator()(std::int64_t x) const { pk.pack(x); }
  void operator()(std::uint64_t x) const { pk.pack(x); }
  void operator()(double x) const { codec<double>::encode(pk, x, st); }
  void operator()(const std::string& x) const { pack_raw(pk, st, x.data(), x.size(), false); }
  void operator()(const mproc::bytes& x) const { pack_raw(pk, st, x.data(), x.size(), true); }
  void operator()(const value::array_t& xs) const {
    pk.pack_array(static_cast<std::uint32_t>(xs.size()));
    for (auto& x : xs)
      codec<value>::encode(pk, x, st);
  }
  void operator()(const value::map_t& xs) const {
    pk.pack_map(static_cast<std::uint32_t>(xs.size()));
    for (auto& [k, v] : xs) {
      codec<value>::encode(pk, k, st);
      codec<value>::encode(pk, v, st);
    }
  }
};

} // namespace

void codec<value>::encode(packer& pk, const value& x, codec_state& st) {
  std::visit(encode_visitor{pk, st}, x.raw());
}

bool codec<value>::decode(const msgpack::object& o, value& out, codec_state& st) {
  switch (o.type) {
    case msgpack::type::NIL: out = value{}; return true;
    case msgpack::type::BOOLEAN: out = value{o.via.boolean}; return true;
    case msgpack::type::POSITIVE_INTEGER: out = value{o.via.u64}; return true;
    case msgpack::type::NEGATIVE_INTEGER: out = value{o.via.i64}; return true;
    case msgpack::type::FLOAT32:
    case msgpack::type::FLOAT64: out = value{o.via.f64}; return true;
    case msgpack::type::STR: out = value{std::string{o.via.str.ptr, o.via.str.size}}; return true;
    case msgpack::type::BIN:
      out = value{mproc::bytes(o.via.bin.ptr, o.via.bin.ptr + o.via.bin.size)};
      return true;
    case msgpack::type::ARRAY: {
      value::array_t xs(o.via.array.size);
      for (std::uint32_t i = 0; i < o.via.array.size; ++i)
        if (!decode(o.via.array.ptr[i], xs[i], st))
          return false;
      out = value{std::move(xs)};
      return true;
    }
    case msgpack::type::MAP: {
      value::map_t xs(o.via.map.size);
      for (std::uint32_t i = 0; i < o.via.map.size; ++i)
        if (!decode(o.via.map.ptr[i].key, xs[i].first, st)
            || !decode(o.via.map.ptr[i].val, xs[i].second, st))
          return false;
      out = value{std::move(xs)};
      return true;
    }
    default: return st.fail(std::string{"a value cannot hold msgpack "} + object_kind(o));
  }
}

} // namespace mproc::wire
