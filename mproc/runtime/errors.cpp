#include "mproc/runtime/errors.hpp"

#include <cxxabi.h>

#include <csignal>
#include <cstring>
#include <exception>
#include <typeinfo>

#include <caf/atom.hpp>
#include <caf/make_message.hpp>

#include "mproc/serialization/type_registry.hpp"

namespace mproc {

namespace {
constexpr caf::atom_value category = caf::atom("mproc");
}

std::string to_string(errc x) {
  switch (x) {
    case errc::none: return "none";
    case errc::process_exited: return "process_exited";
    case errc::link_lost: return "link_lost";
    case errc::unknown_actor_name: return "unknown_actor_name";
    case errc::unknown_message_type: return "unknown_message_type";
    case errc::bad_message: return "bad_message";
    case errc::bad_arguments: return "bad_arguments";
    case errc::spawn_failed: return "spawn_failed";
    case errc::no_such_actor: return "no_such_actor";
    case errc::frame_too_large: return "frame_too_large";
    case errc::timeout: return "timeout";
    case errc::protocol_error: return "protocol_error";
    case errc::node_shutdown: return "node_shutdown";
    case errc::full: return "full";
    case errc::empty: return "empty";
    case errc::closed: return "closed";
    case errc::not_running: return "not_running";
    case errc::gave_up: return "gave_up";
    case errc::task_failed: return "task_failed";
    case errc::auth_failed: return "auth_failed";
    case errc::unreachable: return "unreachable";
    case errc::owner_died: return "owner_died";
    case errc::broken_barrier: return "broken_barrier";
    case errc::command_failed: return "command_failed";
    case errc::no_such_key: return "no_such_key";
    case errc::out_of_range: return "out_of_range";
    case errc::not_found: return "not_found";
    case errc::actor_failed: return "actor_failed";
    case errc::unexpected_message: return "unexpected_message";
  }
  return "errc(" + std::to_string(static_cast<int>(x)) + ")";
}

caf::error make_error(errc x, std::string text) {
  if (text.empty())
    text = to_string(x);
  return caf::error{static_cast<std::uint8_t>(x), category, caf::make_message(std::move(text))};
}

std::string describe_exit(int exitcode) {
  if (exitcode >= 0)
    return "process exited with code " + std::to_string(exitcode);
  const char* name = sigabbrev_np(-exitcode);
  return std::string{"process killed by "} + (name ? std::string{"SIG"} + name : "a signal") + " ("
         + std::to_string(exitcode) + ")";
}

caf::error make_exit_error(int exitcode) {
  return caf::error{static_cast<std::uint8_t>(errc::process_exited), category,
                    caf::make_message(describe_exit(exitcode), std::int32_t{exitcode})};
}

errc code_of(const caf::error& e) {
  return e && e.category() == category ? static_cast<errc>(e.code()) : errc::none;
}

std::optional<int> exit_code_of(const caf::error& e) {
  if (code_of(e) != errc::process_exited)
    return std::nullopt;
  const auto& ctx = e.context();
  if (ctx.size() == 2 && ctx.match_element<std::int32_t>(1))
    return ctx.get_as<std::int32_t>(1);
  return std::nullopt;
}

std::string describe_current_exception() {
  try {
    throw;
  } catch (const std::exception& x) {
    return wire::demangle(typeid(x).name()) + ": " + x.what();
  } catch (...) {
    auto* type = abi::__cxa_current_exception_type();
    return (type ? wire::demangle(type->name()) : std::string{"unknown exception"})
           + ": (not a std::exception)";
  }
}

error::error(caf::error reason, const std::string& what)
  : std::runtime_error(what), reason_(std::move(reason)) {}

} // namespace mproc
