// Tasks: plain functions a Pool runs in its worker processes.
//
//   std::int64_t square(std::int64_t x) { return x * x; }
//   MPROC_TASK(square);                        // at namespace scope
//   auto squares = pool.map(square, xs);       // the pool sends the name, not the pointer
//
// A task's parameters and result must have codecs (built-ins, or MSGPACK_DEFINE structs with
// MPROC_MESSAGE). A task that throws reports "<exception type>: <what()>" for that item; the
// worker lives on. docs/pool.md has the wire format of chunks and their results.
#pragma once

#include <cstdint>
#include <exception>
#include <optional>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "mproc/runtime/errors.hpp"
#include "mproc/serialization/codec.hpp"

namespace mproc {

namespace detail {

struct task_entry {
  std::string name;
  const void* function = nullptr;  // to find the name from the caller's function pointer
  // Runs the task on every item of `items` (an array: single arguments, or argument arrays
  // when `star`) and packs [values, failures]: one value per item (nil where it failed) and
  // a map from the failed items' indexes to their errors, usually empty.
  void (*run)(const msgpack::object& items, bool star, wire::packer& out);
  std::size_t arity = 0;
};

bool register_task(task_entry entry);
const task_entry* find_task(const std::string& name);
const task_entry* find_task(const void* function);
void pack_failures(wire::packer& out,
                   const std::vector<std::pair<std::uint32_t, std::string>>& failures);

template <class F>
struct task_signature;

template <class R, class... Args>
struct task_signature<R (*)(Args...)> {
  using result = R;
  using args = std::tuple<std::decay_t<Args>...>;
  static constexpr std::size_t arity = sizeof...(Args);
};

// Packs the result of one item, or nil and returns the error.
template <auto Fn>
std::optional<std::string> run_one(const msgpack::object& item, bool star, wire::packer& out) {
  using sig = task_signature<decltype(Fn)>;
  typename sig::args args{};
  wire::codec_state st;
  bool decoded = false;
  if constexpr (sig::arity == 1)  // map passes single arguments bare, starmap as arrays
    decoded = star ? wire::codec<typename sig::args>::decode(item, args, st)
                   : wire::codec<std::tuple_element_t<0, typename sig::args>>::decode(
                       item, std::get<0>(args), st);
  else
    decoded = wire::codec<typename sig::args>::decode(item, args, st);
  if (!decoded) {
    out.pack_nil();
    return "bad arguments: " + st.error;
  }
  try {
    if constexpr (std::is_void_v<typename sig::result>) {
      std::apply(Fn, std::move(args));
      out.pack_nil();
    } else {
      auto r = std::apply(Fn, std::move(args));
      wire::codec<typename sig::result>::encode(out, r, st);
    }
    return std::nullopt;
  } catch (...) {
    out.pack_nil();
    return describe_current_exception();
  }
}

template <auto Fn>
task_entry make_task_entry(const char* name) {
  task_entry e;
  e.name = name;
  e.function = reinterpret_cast<const void*>(Fn);
  e.arity = task_signature<decltype(Fn)>::arity;
  e.run = [](const msgpack::object& items, bool star, wire::packer& out) {
    std::vector<std::pair<std::uint32_t, std::string>> failures;
    out.pack_array(2);
    out.pack_array(items.via.array.size);
    for (std::uint32_t i = 0; i < items.via.array.size; ++i)
      if (auto why = run_one<Fn>(items.via.array.ptr[i], star, out))
        failures.emplace_back(i, std::move(*why));
    pack_failures(out, failures);
  };
  return e;
}

} // namespace detail

// The registered name of a task function; throws mproc::error unknown_actor_name.
std::string task_name(const void* function);

} // namespace mproc

#define MPROC_TASK(fn)                                                                     \
  [[maybe_unused]] static const bool MPROC_TASK_CONCAT(mproc_task_, __COUNTER__) =         \
    ::mproc::detail::register_task(::mproc::detail::make_task_entry<&fn>(#fn))
#define MPROC_TASK_CONCAT_IMPL(a, b) a##b
#define MPROC_TASK_CONCAT(a, b) MPROC_TASK_CONCAT_IMPL(a, b)
