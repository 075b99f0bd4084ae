#include "mproc/runtime/actor_registry.hpp"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <stdexcept>

#include <caf/message_view.hpp>
#include <caf/result.hpp>
#include <caf/scheduled_actor.hpp>

#include "mproc/runtime/log.hpp"
#include "mproc/runtime/process.hpp"

#include "mproc/runtime/internal/message_codec.hpp"
#include "mproc/runtime/internal/name_registry.hpp"

namespace mproc {

namespace detail {

namespace {

// Filled by MPROC_ACTOR during static initialisation; read-only afterwards.
name_registry<actor_entry>& actors() {
  static name_registry<actor_entry> instance{"actor"};
  return instance;
}

std::string signature(const actor_entry& e) {
  std::string out = "(";
  for (std::size_t i = 0; i < e.parameters.size(); ++i)
    out += (i ? ", " : "") + tag_of(*e.parameters[i]);
  return out + ")";
}

std::string types_of(const caf::message& m) {
  std::string out = "(";
  for (std::size_t i = 0; i < m.size(); ++i)
    out += (i ? ", " : "") + tag_of(m, i);
  return out + ")";
}

// The entry for `name` if it exists and takes `args`, else the error saying why not.
caf::expected<const actor_entry*> lookup(std::string_view name, const caf::message& args) {
  const auto* entry = actors().find(name);
  if (!entry) {
    std::string known;
    for (const auto& n : actors().names())
      known += (known.empty() ? "" : ", ") + n;
    return make_error(errc::unknown_actor_name,
                      "no actor is registered as '" + std::string{name} + "' (registered: "
                        + (known.empty() ? "none" : known) + "); add MPROC_ACTOR(" + std::string{name}
                        + ")");
  }
  if (!entry->accepts(args))
    return make_error(errc::bad_arguments, "'" + entry->name + "' takes " + signature(*entry)
                                             + ", got " + types_of(args));
  return entry;
}

} // namespace

caf::error actor_failed(std::exception_ptr& e) {
  std::string text;
  try {
    std::rethrow_exception(e);
  } catch (...) {
    text = describe_current_exception();
  }
  // One write, so lines of processes failing at once do not interleave.
  auto line = "Process " + current_process_name() + " (pid " + std::to_string(::getpid())
              + "): " + text + "\n";
  [[maybe_unused]] auto n = ::write(STDERR_FILENO, line.data(), line.size());
  return make_error(errc::actor_failed, text);
}

caf::result<caf::message> unexpected_message(const char* name, caf::scheduled_actor* self,
                                             caf::message_view& msg) {
  auto text = "actor '" + std::string{name} + "' (id " + std::to_string(self->id()) + ", process "
              + current_process_name() + " pid " + std::to_string(::getpid())
              + ") has no handler for a message of types "
              + types_of(msg.copy_content_to_message());
  log::warn(text);
  return make_error(errc::unexpected_message, text);
}

bool register_actor(actor_entry entry) {
  actors().add(std::move(entry));
  return true;
}

caf::expected<caf::actor> spawn_registered(caf::actor_system& sys, std::string_view name,
                                           const caf::message& args) {
  auto entry = lookup(name, args);
  if (!entry)
    return entry.error();
  return (*entry)->spawn(sys, (*entry)->name.c_str(), args);
}

caf::error check_spawn(std::string_view name, const caf::message& args) {
  auto entry = lookup(name, args);
  return entry ? caf::error{} : entry.error();
}

} // namespace detail

std::vector<std::string> registered_actors() {
  return detail::actors().names();
}

} // namespace mproc
