// shared_array<T>: Python's multiprocessing.Array, a fixed number of T in memory every
// process of the tree that holds a handle sees.
//
//   mproc::shared_array<std::int32_t> arr{std::vector<std::int32_t>{0, 1, 2}};
//   node.spawn_process("negate", {}, arr);    // the child: arr.set(i, -arr.get(i))
//   arr.to_vector();                            // {0, -1, -2} once the child has run
//
// As shared_value.hpp: T trivially copyable; get, set and to_vector take the array's rlock
// (Python's synchronized Array); raw() is the elements themselves, for loops under
// get_lock() or without a lock (synchronized = false).
#pragma once

#include <cstddef>
#include <span>
#include <type_traits>
#include <typeinfo>
#include <vector>

#include <caf/allowed_unsafe_message_type.hpp>

#include "mproc/actors/shared_block.hpp"
#include "mproc/runtime/message_types.hpp"

namespace mproc {

template <class T>
class shared_array {
  static_assert(std::is_trivially_copyable_v<T>,
                "shared_array<T> holds trivially copyable types (numbers, plain structs)");
  // The elements start 64-byte aligned in the shared mapping (shared_block.cpp).
  static_assert(alignof(T) <= 64, "shared_array<T>: T aligned beyond 64 bytes is not supported");

public:
  // `size` elements, zeroed (Python's Array('i', 10)).
  explicit shared_array(std::size_t size, bool synchronized = true)
      : block_{detail::shared_block::kind::array, typeid(T).name(), bytes_for(size),
               synchronized} {}
  // A copy of `initial` (Python's Array('i', range(10))).
  explicit shared_array(const std::vector<T>& initial, bool synchronized = true)
      : shared_array{initial.size(), synchronized} {
    std::copy(initial.begin(), initial.end(), raw().begin());
  }

  std::size_t size() const { return block().size() / sizeof(T); }
  // Throw mproc::error bad_arguments for an index out of range.
  T get(std::size_t i) const {
    check(i);
    auto held = hold();
    return raw()[i];
  }
  void set(std::size_t i, const T& v) const {
    check(i);
    auto held = hold();
    raw()[i] = v;
  }
  std::vector<T> to_vector() const {
    auto held = hold();
    return {raw().begin(), raw().end()};
  }
  // The elements themselves, in shared memory: no lock taken.
  std::span<T> raw() const { return {static_cast<T*>(block().data()), size()}; }
  const rlock& get_lock() const { return block().lock(); }

private:
  friend struct wire::codec<shared_array>;
  shared_array(detail::shared_block b) : block_{std::move(b)} {}
  const detail::shared_block& block() const {
    (void)registered_;
    return block_;
  }
  std::optional<guard<rlock>> hold() const { return block().hold("shared_array"); }
  static std::size_t bytes_for(std::size_t size) {
    if (size > (std::size_t{1} << 48) / sizeof(T))
      detail::throw_misuse("a shared_array of " + std::to_string(size) + " elements is too large");
    return size * sizeof(T);
  }
  void check(std::size_t i) const {
    if (i >= size())
      detail::throw_misuse("index " + std::to_string(i) + " out of range for a shared_array of "
                           + std::to_string(size()));
  }
  static inline const bool registered_ = detail::register_message_type<shared_array>();

  detail::shared_block block_;
};

} // namespace mproc

template <class T>
struct mproc::wire::codec<mproc::shared_array<T>> {
  static std::string name() { return mproc::detail::shared_tag("shared_array", typeid(T).name()); }
  static mproc::shared_array<T> blank() {
    return mproc::shared_array<T>{mproc::detail::shared_block{}};
  }
  static void encode(packer& pk, const mproc::shared_array<T>& a, codec_state& st) {
    a.block().encode(pk, st, "shared_array");
  }
  static bool decode(const msgpack::object& o, mproc::shared_array<T>& out, codec_state& st) {
    mproc::detail::shared_block b;
    if (!b.decode(o, st, mproc::detail::shared_block::kind::array, typeid(T).name(), sizeof(T),
                  "shared_array"))
      return false;
    out = mproc::shared_array<T>{std::move(b)};
    return true;
  }
};

template <class T>
struct caf::allowed_unsafe_message_type<mproc::shared_array<T>> : std::true_type {};
