// mproc::value: any msgpack value (nil, bool, int, float, str, bytes, array, map), for data
// whose shape is known only at run time — a Manager dict like Python's
// `{1: '1', '2': 2, 0.25: None}` — and printed as Python's repr() prints it.
//
//   mproc::value v = mproc::value::map_t{{1, "1"}, {"2", 2}, {0.25, nullptr}};
//   std::cout << v;                        // {1: '1', '2': 2, 0.25: None}
//   v.as<std::int64_t>();                  // throws std::invalid_argument: it is a map
//
// Maps keep insertion order, as Python's dicts do. Equality is Python's: 1 == 1.0 == true.
// On the wire a value is its msgpack value as it stands (wire tag "value").
#pragma once

#include <compare>
#include <cstdint>
#include <iosfwd>
#include <limits>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "mproc/serialization/bytes.hpp"
#include "mproc/serialization/codec.hpp"

namespace mproc {

class value {
public:
  using array_t = std::vector<value>;
  using map_t = std::vector<std::pair<value, value>>;
  enum class kind { nil, boolean, integer, floating, string, bytes, array, map };

  value() = default;
  value(std::nullptr_t) {}
  value(bool x) : v_{x} {}
  template <class T>
    requires(std::is_integral_v<T> && !std::is_same_v<T, bool>)
  value(T x) {
    if constexpr (std::is_unsigned_v<T>)
      set_unsigned(x);
    else
      v_ = static_cast<std::int64_t>(x);
  }
  value(double x) : v_{x} {}
  value(const char* x) : v_{std::string{x}} {}
  value(std::string x) : v_{std::move(x)} {}
  value(std::string_view x) : v_{std::string{x}} {}
  value(mproc::bytes x) : v_{std::move(x)} {}
  value(array_t x) : v_{std::move(x)} {}
  value(map_t x) : v_{std::move(x)} {}

  kind type() const;
  bool is_nil() const { return type() == kind::nil; }

  // The value as T: bool, an integer type (range-checked), double (from an int too),
  // std::string, mproc::bytes, array_t, map_t. Throws std::invalid_argument naming both kinds.
  template <class T>
  T as() const;

  // Python's dict.get(key): the value of the first entry whose key == `key`, or null when
  // there is none or this is not a map.
  const value* find(const value& key) const;

  // Python's repr(): None, True, 3, 0.25, 'text', b'\x00', [1, 2], {'a': 1}.
  std::string repr() const;

  // Python's ==: numbers compare by value across int, float and bool.
  friend bool operator==(const value& a, const value& b);
  // Python's <, for sorting: numbers with numbers, str with str, bytes with bytes, arrays
  // element by element. Other pairs (and nil) throw std::invalid_argument, as Python's
  // TypeError: "'<' not supported between str and int".
  friend std::strong_ordering compare(const value& a, const value& b);

  // The variant underneath, for visitors. uint64 holds integers above INT64_MAX only.
  using storage = std::variant<std::monostate, bool, std::int64_t, std::uint64_t, double,
                               std::string, mproc::bytes, array_t, map_t>;
  const storage& raw() const { return v_; }

private:
  void set_unsigned(std::uint64_t x);
  [[noreturn]] void throw_not(const char* wanted) const;
  std::int64_t as_int64() const;
  std::uint64_t as_uint64() const;

  storage v_;
};

const char* to_string(value::kind k);
std::ostream& operator<<(std::ostream& os, const value& v);

template <class T>
T value::as() const {
  if constexpr (std::is_same_v<T, bool>) {
    if (auto p = std::get_if<bool>(&v_))
      return *p;
    throw_not("bool");
  } else if constexpr (std::is_integral_v<T>) {
    if constexpr (std::is_unsigned_v<T>) {
      auto x = as_uint64();
      if (x > static_cast<std::uint64_t>(std::numeric_limits<T>::max()))
        throw_not("a smaller unsigned integer");
      return static_cast<T>(x);
    } else {
      auto x = as_int64();
      if (x < std::numeric_limits<T>::min() || x > std::numeric_limits<T>::max())
        throw_not("a smaller integer");
      return static_cast<T>(x);
    }
  } else if constexpr (std::is_floating_point_v<T>) {
    if (auto p = std::get_if<double>(&v_))
      return static_cast<T>(*p);
    if (auto p = std::get_if<std::int64_t>(&v_))
      return static_cast<T>(*p);
    if (auto p = std::get_if<std::uint64_t>(&v_))
      return static_cast<T>(*p);
    throw_not("float");
  } else {
    if (auto p = std::get_if<T>(&v_))
      return *p;
    throw_not(std::is_same_v<T, std::string> ? "str"
              : std::is_same_v<T, mproc::bytes> ? "bytes"
              : std::is_same_v<T, array_t>      ? "array"
                                                : "map");
  }
}

} // namespace mproc

template <>
struct mproc::wire::codec<mproc::value> {
  static std::string name() { return "value"; }
  static void encode(packer& pk, const mproc::value& x, codec_state& st);
  // Any msgpack value but ext; integers keep their sign, floats become double.
  static bool decode(const msgpack::object& o, mproc::value& out, codec_state& st);
};
