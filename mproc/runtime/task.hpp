// Tasks: plain functions, run by a Pool in its worker processes or as a process's target.
//
//   std::int64_t square(std::int64_t x) { return x * x; }
//   MPROC_TASK(square);                        // at namespace scope
//   auto squares = pool.map(square, xs);       // the pool sends the name, not the pointer
//
//   void greet(std::string who, mproc::queue<std::string> out) { out.put("hi " + who); }
//   MPROC_TASK(greet);
//   auto p = node.spawn_process(greet, {.name = "greeter"}, "bob", q);   // Process(target=...)
//
// A task's parameters and result must have codecs (built-ins, or MSGPACK_DEFINE structs with
// MPROC_MESSAGE). Arguments are converted to the parameters' types at compile time. In a
// pool, a task that throws reports "<exception type>: <what()>" for that item and the worker
// lives on; docs/pool.md has the wire format of chunks and their results. As a process's
// target, the process ends when the function returns (exit code 0, its result dropped, as
// Python's) or throws (exit code 1, "Process <name> (pid N): <type>: <what>" on its stderr);
// its arguments travel as an actor's do, so handles (queues, pipes, locks) may be among them.
#pragma once

#include <cstdint>
#include <exception>
#include <optional>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include <caf/make_message.hpp>
#include <caf/message.hpp>

#include "mproc/runtime/errors.hpp"
#include "mproc/runtime/message_types.hpp"
#include "mproc/runtime/process.hpp"
#include "mproc/serialization/codec.hpp"

namespace mproc {

namespace detail {

struct task_entry {
  std::string name;
  const void* function = nullptr;  // to find the name from the caller's function pointer
  // Runs the task on every item of `items` (an array: single arguments, or argument arrays
  // when `star`) and packs [values, failures]: one value per item (nil where it failed) and
  // a map from the failed items' indexes to their errors, usually empty. Null for a task a
  // pool cannot run (runs_in_pool).
  void (*run)(const msgpack::object& items, bool star, wire::packer& out) = nullptr;
  // As a process's target: whether `args` holds the task's name and then its arguments, and
  // the call with them (exceptions propagate).
  bool (*accepts)(const caf::message& args) = nullptr;
  void (*call)(const caf::message& args) = nullptr;
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
  using params = std::tuple<Args...>;  // as declared
};

// A decoded argument as its parameter takes it: moved, except into a non-const reference.
template <class Param, class T>
decltype(auto) pass(T& value) {
  if constexpr (std::is_lvalue_reference_v<Param>
                && !std::is_const_v<std::remove_reference_t<Param>>)
    return (value);
  else
    return std::move(value);
}

// Calls Fn with the decoded arguments `values` (task_signature's args).
template <auto Fn, class Tuple, std::size_t... Is>
decltype(auto) invoke_task(Tuple& values, std::index_sequence<Is...>) {
  using params = typename task_signature<decltype(Fn)>::params;
  return Fn(pass<std::tuple_element_t<Is, params>>(std::get<Is>(values))...);
}
template <auto Fn, class Tuple>
decltype(auto) invoke_task(Tuple& values) {
  return invoke_task<Fn>(values, std::make_index_sequence<std::tuple_size_v<Tuple>>{});
}

// Whether a pool can run the task: its arguments and result travel in a chunk's msgpack,
// so each needs a codec and a value to decode into. A process target needs neither (its
// arguments travel as an actor's do: handles such as shared values among them).
template <class T>
concept chunk_value = requires { sizeof(wire::codec<T>); }
                      && (std::is_default_constructible_v<T> || requires { wire::codec<T>::blank(); });
template <class Tuple>
struct chunk_arguments;
template <class... Ts>
struct chunk_arguments<std::tuple<Ts...>> : std::bool_constant<(chunk_value<Ts> && ...)> {};
template <class F>
constexpr bool runs_in_pool =
  chunk_arguments<typename task_signature<F>::args>::value
  && (std::is_void_v<typename task_signature<F>::result>
      || chunk_value<std::decay_t<typename task_signature<F>::result>>);

// Packs the result of one item, or nil and returns the error.
template <auto Fn>
std::optional<std::string> run_one(const msgpack::object& item, bool star, wire::packer& out) {
  using sig = task_signature<decltype(Fn)>;
  auto args = wire::blank_value<typename sig::args>();
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
      invoke_task<Fn>(args);
      out.pack_nil();
    } else {
      auto r = invoke_task<Fn>(args);
      wire::codec<typename sig::result>::encode(out, r, st);
      if (!st.ok())  // a handle that cannot go (packed as nil in its place): say why here
        return "the result cannot travel: " + st.error;
    }
    return std::nullopt;
  } catch (...) {
    out.pack_nil();
    return describe_current_exception();
  }
}

template <class Tuple>
struct task_call;

template <class... Ts>
struct task_call<std::tuple<Ts...>> {
  static bool accepts(const caf::message& m) { return m.match_elements<std::string, Ts...>(); }
  template <auto Fn, std::size_t... Is>
  static void call(const caf::message& m, std::index_sequence<Is...>) {
    std::tuple<Ts...> values{m.get_as<Ts>(Is + 1)...};  // copies: the message is shared
    invoke_task<Fn>(values);
  }
};

template <auto Fn>
task_entry make_task_entry(const char* name) {
  task_entry e;
  e.name = name;
  e.function = reinterpret_cast<const void*>(Fn);
  if constexpr (runs_in_pool<decltype(Fn)>)
    e.run = [](const msgpack::object& items, bool star, wire::packer& out) {
      std::vector<std::pair<std::uint32_t, std::string>> failures;
      out.pack_array(2);
      out.pack_array(items.via.array.size);
      for (std::uint32_t i = 0; i < items.via.array.size; ++i)
        if (auto why = run_one<Fn>(items.via.array.ptr[i], star, out))
          failures.emplace_back(i, std::move(*why));
      pack_failures(out, failures);
    };
  using call = task_call<typename task_signature<decltype(Fn)>::args>;
  e.accepts = &call::accepts;
  e.call = [](const caf::message& m) {
    call::template call<Fn>(m, std::make_index_sequence<task_signature<decltype(Fn)>::arity>{});
  };
  return e;
}


} // namespace detail


} // namespace mproc

#define MPROC_TASK(fn)                                                                     \
  [[maybe_unused]] static const bool MPROC_TASK_CONCAT(mproc_task_, __COUNTER__) =         \
    ::mproc::detail::register_task(::mproc::detail::make_task_entry<&fn>(#fn))
// A class whose objects are processes' targets, as a Python Process subclass: the object
// is the argument, its run() the body. The class needs MSGPACK_DEFINE(its fields...); this
// line also makes it a message (MPROC_MESSAGE: do not add that line too).
//   struct downloader { std::string url; MSGPACK_DEFINE(url); void run(); };
//   MPROC_PROCESS_CLASS(downloader);
//   auto p = node.spawn_process(downloader{"https://..."}, {.name = "dl"});
#define MPROC_PROCESS_CLASS(...)                                                           \
  MPROC_MESSAGE(__VA_ARGS__);                                                              \
  [[maybe_unused]] static const bool MPROC_TASK_CONCAT(mproc_task_, __COUNTER__) =         \
    ::mproc::detail::register_task(                                                        \
      ::mproc::detail::make_task_entry<&::mproc::detail::run_object<__VA_ARGS__>>(#__VA_ARGS__))
#define MPROC_TASK_CONCAT_IMPL(a, b) a##b
#define MPROC_TASK_CONCAT(a, b) MPROC_TASK_CONCAT_IMPL(a, b)
