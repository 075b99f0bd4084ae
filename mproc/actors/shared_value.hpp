// shared_value<T>: Python's multiprocessing.Value, one T in memory every process of the tree
// that holds a handle sees.
//
//   mproc::shared_value<double> num{0.0};
//   node.spawn_process("f", {}, num);         // the child calls num.set(3.1415927)
//   num.get();                                 // 3.1415927 once the child has run
//
// T is trivially copyable (numbers, plain structs). get() and set() take the value's rlock,
// as Python's synchronized Value does; get_lock() gives it for longer sections (a
// read-modify-write: `auto held = v.get_lock().hold(); v.raw() += 1;`). Made with
// synchronized = false (Python's lock=False) there is no lock and get_lock() throws.
// The memory goes with the last handle: nothing in /dev/shm (actors/segment.hpp).
#pragma once

#include <type_traits>
#include <typeinfo>

#include <caf/allowed_unsafe_message_type.hpp>

#include "mproc/actors/shared_block.hpp"
#include "mproc/runtime/message_types.hpp"

namespace mproc {

template <class T>
class shared_value {
  static_assert(std::is_trivially_copyable_v<T>,
                "shared_value<T> holds trivially copyable types (numbers, plain structs)");
  // The value starts 64-byte aligned in the shared mapping (shared_block.cpp).
  static_assert(alignof(T) <= 64, "shared_value<T>: T aligned beyond 64 bytes is not supported");

public:
  explicit shared_value(T initial = T{}, bool synchronized = true)
      : block_{detail::shared_block::kind::value, typeid(T).name(), sizeof(T), synchronized} {
    raw() = initial;
  }

  T get() const {
    auto held = block().hold("shared_value");
    return raw();
  }
  void set(const T& v) const {
    auto held = block().hold("shared_value");
    raw() = v;
  }
  // The value itself, in shared memory: no lock taken.
  T& raw() const { return *static_cast<T*>(block().data()); }
  const rlock& get_lock() const { return block().lock(); }

private:
  friend struct wire::codec<shared_value>;
  shared_value(detail::shared_block b) : block_{std::move(b)} {}
  // Every use of the type registers it for the wire, in each program that uses it.
  const detail::shared_block& block() const {
    (void)registered_;
    return block_;
  }
  static inline const bool registered_ = detail::register_message_type<shared_value>();

  detail::shared_block block_;
};

} // namespace mproc

// On the wire: [descriptor index, kind], the memory travelling beside the frame.
template <class T>
struct mproc::wire::codec<mproc::shared_value<T>> {
  static std::string name() { return mproc::detail::shared_tag("shared_value", typeid(T).name()); }
  static mproc::shared_value<T> blank() {
    return mproc::shared_value<T>{mproc::detail::shared_block{}};
  }
  static void encode(packer& pk, const mproc::shared_value<T>& v, codec_state& st) {
    v.block().encode(pk, st, "shared_value");
  }
  static bool decode(const msgpack::object& o, mproc::shared_value<T>& out, codec_state& st) {
    mproc::detail::shared_block b;
    if (!b.decode(o, st, mproc::detail::shared_block::kind::value, typeid(T).name(), sizeof(T),
                  "shared_value") || b.size() != sizeof(T))
      return st.fail("shared_value: not one " + name());
    out = mproc::shared_value<T>{std::move(b)};
    return true;
  }
};

template <class T>
struct caf::allowed_unsafe_message_type<mproc::shared_value<T>> : std::true_type {};
