// mproc::value (value.hpp): its accessors, equality and ordering as Python's, and its codec;
// its repr is in value_repr.cpp.
#include "mproc/serialization/value.hpp"

#include <cmath>
#include <cstring>
#include <limits>
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

} // namespace mproc

namespace mproc::wire {

namespace {

// The range check comes first: converting a double beyond float's range is undefined.
bool exact_as_float32(double x) {
  if (std::isnan(x) || std::isinf(x))
    return true;  // a NaN stays a NaN (its payload bits are nobody's data)
  return std::fabs(x) <= std::numeric_limits<float>::max()
         && static_cast<double>(static_cast<float>(x)) == x;
}

struct encode_visitor {
  packer& pk;
  codec_state& st;
  void operator()(std::monostate) const { pk.pack_nil(); }
  void operator()(bool x) const { pk.pack(x); }
  void operator()(std::int64_t x) const { pk.pack(x); }
  void operator()(std::uint64_t x) const { pk.pack(x); }
  void operator()(double x) const {
    // A float that a float32 holds exactly goes as one, 5 bytes instead of 9: a value decoded
    // from a float32 and packed again (a manager's stored item) never grows, and an answer
    // handing it back fits wherever the item came through.
    if (exact_as_float32(x))
      codec<float>::encode(pk, static_cast<float>(x), st);  // not pack_float: 3.0 would go as 3
    else
      codec<double>::encode(pk, x, st);
  }
  void operator()(const std::string& x) const { pack_raw(pk, st, x.data(), x.size(), false); }
  void operator()(const mproc::bytes& x) const { pack_raw(pk, st, x.data(), x.size(), true); }
  void operator()(const value::array_t& xs) const {
    nested level{st};
    pk.pack_array(static_cast<std::uint32_t>(xs.size()));
    for (auto& x : xs)
      codec<value>::encode(pk, x, st);
  }
  void operator()(const value::map_t& xs) const {
    nested level{st};
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
