// Mailbox elements for decoded messages, from a pool.
//
// A loop thread decodes each incoming message into a mailbox element; a CAF worker frees it
// once the actor ran. Allocated on one thread and freed on another, a block never came back
// through glibc's per-thread cache, so every allocation took the arena's slow path: a fifth
// of a receiving loop thread's time in a one-way flood (perf, 2026-12-03). Freed blocks go
// onto one lock-free stack per size; an allocating thread takes the whole stack at once.
#pragma once

#include <cstddef>
#include <utility>

#include <caf/mailbox_element.hpp>

namespace mproc::detail {

namespace element_pool {

// At least `size` bytes, aligned as operator new aligns. Small sizes come from the pool.
void* allocate(std::size_t size);
// `size` as given to allocate.
void release(void* block, std::size_t size) noexcept;

} // namespace element_pool

// A mailbox element holding one value, as caf::mailbox_element_vals<T> does, whose storage
// comes from the pool. CAF deletes it through its virtual destructor, which finds the
// operator delete below.
template <class T>
class pooled_element final : public caf::mailbox_element,
                             public caf::detail::tuple_vals_impl<caf::type_erased_tuple, T> {
public:
  // No sender and an asynchronous id: the receiving peer sets both.
  template <class U>
  explicit pooled_element(U&& value)
      : caf::mailbox_element(caf::strong_actor_ptr{}, caf::make_message_id(), {}),
        caf::detail::tuple_vals_impl<caf::type_erased_tuple, T>(std::forward<U>(value)) {}

  caf::type_erased_tuple& content() override { return *this; }
  const caf::type_erased_tuple& content() const override { return *this; }

  caf::message move_content_to_message() override {
    return caf::make_message(std::move(std::get<0>(this->data())));
  }
  caf::message copy_content_to_message() const override {
    return caf::make_message(std::get<0>(this->data()));
  }

  static void* operator new(std::size_t size) { return element_pool::allocate(size); }
  static void operator delete(void* block, std::size_t size) noexcept {
    element_pool::release(block, size);
  }
};

// Whether the pool is in use: under AddressSanitizer it is plain new and delete, so that a
// use of an element after its free is seen (GCC and clang say so differently).
#if defined(__SANITIZE_ADDRESS__)
inline constexpr bool element_pool_enabled = false;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
inline constexpr bool element_pool_enabled = false;
#else
inline constexpr bool element_pool_enabled = true;
#endif
#else
inline constexpr bool element_pool_enabled = true;
#endif

// Whether T's element can come from the pool (its blocks have operator new's alignment).
template <class T>
inline constexpr bool poolable = alignof(pooled_element<T>) <= __STDCPP_DEFAULT_NEW_ALIGNMENT__;

} // namespace mproc::detail
