// Spawnable actors: a function becomes startable by name — in this process, in a child
// process, or (later) on another machine — with one line at namespace scope:
//
//   caf::behavior squarer(caf::event_based_actor*) { return {[](int32_t x) { return x * x; }}; }
//   MPROC_ACTOR(squarer);
//
//   void worker(caf::blocking_actor* self, std::int32_t id, std::string tag);   // blocking
//   MPROC_ACTOR(worker);
//
// Arguments cross the wire as a message, so each argument type must be sendable (see
// message_types.hpp). The types must match the function's parameters exactly: an
// int64_t parameter does not accept an int32_t argument.
#pragma once

#include <exception>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <vector>

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>
#include <caf/expected.hpp>
#include <caf/message.hpp>

#include <typeinfo>

#include "mproc/runtime/errors.hpp"

namespace mproc {

namespace detail {

struct actor_entry {
  std::string name;
  std::vector<const std::type_info*> parameters;  // after the self pointer
  bool (*accepts)(const caf::message& args);
  // Requires accepts(args). `name` is the entry's own, which lives as long as the program.
  caf::actor (*spawn)(caf::actor_system&, const char* name, const caf::message& args);
};

// Throws std::logic_error when the name is taken.
bool register_actor(actor_entry entry);

template <class F>
struct actor_function;

template <class R, class Self, class... Args>
struct actor_function<R (*)(Self*, Args...)> {
  using self = Self;
  using args = std::tuple<std::decay_t<Args>...>;
};

// An exception that escaped an actor function, as its exit reason: errc::actor_failed with
// "<type>: <what>", also printed on stderr as "Process <name> (pid N): <type>: <what>" (CAF
// alone would end the actor with a bare runtime_error, its text lost at the process's end).
caf::error actor_failed(std::exception_ptr& e);

// The answer to a message the actor registered as `name` has no handler for:
// errc::unexpected_message naming the actor and the message's types (CAF's own answer names
// neither), also logged (level warn), since a message sent without a request gets no answer.
caf::result<caf::message> unexpected_message(const char* name, caf::scheduled_actor* self,
                                             caf::message_view& msg);

// Runs the actor function registered as `name` with its uncaught exceptions turned into
// actor_failed: an event-based actor through its exception handler (set before the function
// runs, so it also covers the function itself), a blocking one through its exit reason; an
// event-based one also answers what it has no handler for with unexpected_message.
template <auto Fn, class Self, class... Ts>
auto guarded(Self* self, const char* name, Ts... args) {
  if constexpr (requires { self->set_exception_handler(&actor_failed); }) {
    self->set_exception_handler(&actor_failed);
    self->set_default_handler([name](caf::scheduled_actor* s, caf::message_view& msg) {
      return unexpected_message(name, s, msg);
    });
    return Fn(self, std::move(args)...);
  } else {
    try {
      Fn(self, std::move(args)...);
    } catch (...) {
      auto e = std::current_exception();
      self->fail_state(actor_failed(e));
    }
  }
}

template <class Tuple>
struct arguments_of;

template <class... Ts>
struct arguments_of<std::tuple<Ts...>> {
  static std::vector<const std::type_info*> types() { return {&typeid(Ts)...}; }

  static bool accepts(const caf::message& m) { return m.match_elements<Ts...>(); }

  template <auto Fn, std::size_t... Is>
  static caf::actor spawn(caf::actor_system& sys, const char* name, const caf::message& m,
                          std::index_sequence<Is...>) {
    return caf::actor{
      sys.spawn(guarded<Fn, typename actor_function<decltype(Fn)>::self, Ts...>, name,
                m.get_as<Ts>(Is)...)};
  }
};

template <auto Fn>
actor_entry make_actor_entry(const char* name) {
  using args = arguments_of<typename actor_function<decltype(Fn)>::args>;
  return {name, args::types(), &args::accepts,
          [](caf::actor_system& sys, const char* name, const caf::message& m) {
            return args::template spawn<Fn>(sys, name, m,
                                            std::make_index_sequence<std::tuple_size_v<
                                              typename actor_function<decltype(Fn)>::args>>{});
          }};
}

// Spawns the actor registered as `name` in this process, or says why it cannot
// (errc::unknown_actor_name, errc::bad_arguments).
caf::expected<caf::actor> spawn_registered(caf::actor_system& sys, std::string_view name,
                                           const caf::message& args);

// The same checks without spawning.
caf::error check_spawn(std::string_view name, const caf::message& args);

} // namespace detail

// Names of all registered actors, sorted.
std::vector<std::string> registered_actors();

} // namespace mproc

#define MPROC_ACTOR(fn)                                                                   \
  [[maybe_unused]] static const bool MPROC_ACTOR_CONCAT(mproc_actor_, __COUNTER__) =       \
    ::mproc::detail::register_actor(::mproc::detail::make_actor_entry<&fn>(#fn))
#define MPROC_ACTOR_CONCAT_IMPL(a, b) a##b
#define MPROC_ACTOR_CONCAT(a, b) MPROC_ACTOR_CONCAT_IMPL(a, b)
