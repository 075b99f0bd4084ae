// Making a type sendable across processes.
//
//   struct job { std::int32_t id; std::string text; MSGPACK_DEFINE(id, text); };
//   MPROC_MESSAGE(job);                        // at global namespace scope
//   MPROC_MESSAGE(std::vector<job>);           // containers of it, when sent on their own
//
// Built-ins need nothing: bool, fixed-width integers, float, double, std::string,
// mproc::bytes, mproc::blob, mproc::value (any msgpack value), caf::atom_value, caf::actor,
// caf::error, and vectors of the scalars, strings and actors, and map<string, scalar or
// string>. Other containers (vector, set, map,
// unordered_map, optional, pair, tuple) of sendable types travel fine *inside* a struct; as a
// message element of their own they need one MPROC_MESSAGE line each.
//
// The wire tag is the spelling in the macro for structs ("job", "app::job") and structural
// for containers ("vec<job>"); docs/protocol.md lists the built-in tags.
#pragma once

#include <optional>

#include <caf/allowed_unsafe_message_type.hpp>
#include <caf/mailbox_element.hpp>
#include <caf/message_builder.hpp>

#include "mproc/runtime/element_pool.hpp"
#include "mproc/serialization/type_registry.hpp"
#include "mproc/serialization/value.hpp"

template <>
struct caf::allowed_unsafe_message_type<mproc::value> : std::true_type {};

namespace mproc {

namespace detail {

// Where decoded elements go. A message of one element (most are) is made directly, in one
// allocation; a message_builder allocates its data, each element, and their vector.
class message_sink {
public:
  // `as_element`: the message is for a mailbox (take_element). One element then goes
  // straight into a mailbox element that stores it, one allocation instead of a message
  // plus the element wrapping it; on a receiving loop thread that was a sixth of a one-way
  // flood's time (the allocations are freed by another thread, so none is cheap). That one
  // allocation comes from element_pool.hpp.
  explicit message_sink(bool single, bool as_element = false) : as_element_(as_element) {
    if (!single)
      many_.emplace();
  }

  template <class T>
  void append(T&& value) {
    if (many_)
      many_->append(std::forward<T>(value));
    else if (as_element_)
      element_ = make_element(std::forward<T>(value));
    else
      one_ = caf::make_message(std::forward<T>(value));
  }

  caf::message take() { return many_ ? many_->move_to_message() : std::move(one_); }
  // The element, without sender and with an asynchronous id: the caller sets both.
  caf::mailbox_element_ptr take_element() {
    if (element_)
      return std::move(element_);
    return caf::make_mailbox_element(nullptr, caf::make_message_id(), {}, take());
  }

private:
  template <class T>
  static caf::mailbox_element_ptr make_element(T&& value) {
    using type = std::decay_t<T>;
    if constexpr (poolable<type>)
      return caf::mailbox_element_ptr{new pooled_element<type>(std::forward<T>(value))};
    else
      return caf::make_mailbox_element(nullptr, caf::make_message_id(), {},
                                       std::forward<T>(value));
  }

  bool as_element_;
  caf::message one_;
  caf::mailbox_element_ptr element_;
  std::optional<caf::message_builder> many_;
};

template <class T>
bool register_message_type() {
  wire::types().add(wire::make_type_entry<T, message_sink>());
  return true;
}

} // namespace detail
} // namespace mproc

#define MPROC_CONCAT_IMPL(a, b) a##b
#define MPROC_CONCAT(a, b) MPROC_CONCAT_IMPL(a, b)

// CAF may hold the type in a local message (allowed_unsafe_message_type); the codec knows
// its wire name (user_type_name, used for MSGPACK_DEFINE structs only); the registry maps
// the tag to the type before main() runs.
#define MPROC_MESSAGE(...)                                                                  \
  template <>                                                                               \
  struct caf::allowed_unsafe_message_type<__VA_ARGS__> : std::true_type {};                 \
  template <>                                                                               \
  struct mproc::wire::user_type_name<__VA_ARGS__> {                                         \
    static constexpr const char* value = #__VA_ARGS__;                                      \
  };                                                                                        \
  [[maybe_unused]] static const bool MPROC_CONCAT(mproc_message_type_, __COUNTER__) =       \
    ::mproc::detail::register_message_type<__VA_ARGS__>()
