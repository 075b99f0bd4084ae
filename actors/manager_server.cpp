#include "actors/manager_server.hpp"

#include <map>
#include <unordered_map>

#include <caf/all.hpp>

#include "actors/manager_store.hpp"
#include "runtime/actor_registry.hpp"
#include "runtime/log.hpp"

namespace mproc::detail {

namespace {

struct manager_state {
  std::unordered_map<std::uint64_t, std::unique_ptr<manager_store>> objects;
  std::map<std::string, std::uint64_t, std::less<>> names;
  std::uint64_t next_id = 1;
  bool stopping = false;

  manager_reply run(std::uint64_t object, caf::atom_value op, manager_args& args) {
    for (auto& arg : args)
      canonicalize(arg);
    if (object == manager_object)
      return own(op, args);
    auto i = objects.find(object);
    if (i == objects.end())
      throw op_error(errc::no_such_actor, "the manager holds no object " + std::to_string(object)
                                            + " (released, or from another manager)");
    return i->second->call(op, args);
  }

  manager_reply own(caf::atom_value op, manager_args& args) {
    switch (op) {
      case caf::atom("create"): return create(args);
      case caf::atom("release"): {
        expect_args(args, 1, "release");
        auto id = static_cast<std::uint64_t>(int_arg(args[0]));
        std::erase_if(names, [id](auto& entry) { return entry.second == id; });
        return {encoded(objects.erase(id) > 0)};
      }
      case caf::atom("names"): {
        manager_reply out;
        for (auto& [name, id] : names) {
          out.push_back(encoded(value{name}));
          out.push_back(encoded(value{objects.at(id)->kind()}));
        }
        return out;
      }
      case caf::atom("stop"): stopping = true; return {};
      default:
        throw op_error(errc::bad_arguments,
                       "a manager has no operation '" + caf::to_string(op) + "'");
    }
  }

  // ("create", [kind, name or nil]) -> [id]: a new object, or the one already under `name`
  // when it is of the same kind.
  manager_reply create(const manager_args& args) {
    expect_args(args, 2, "create");
    auto kind = string_arg(args[0]);
    auto name = value_arg(args[1]);
    if (!name.is_nil() && name.type() != value::kind::string)
      throw op_error(errc::bad_arguments, "an object's name is a string or nil");
    if (!name.is_nil()) {
      if (auto i = names.find(name.as<std::string>()); i != names.end()) {
        auto& existing = *objects.at(i->second);
        if (existing.kind() != kind)
          throw op_error(errc::bad_arguments, "'" + i->first + "' is a "
                                                + std::string{existing.kind()} + ", not a " + kind);
        return {encoded(i->second)};
      }
    }
    auto store = make(kind);
    auto id = next_id++;
    objects.emplace(id, std::move(store));
    if (!name.is_nil())
      names.emplace(name.as<std::string>(), id);
    return {encoded(id)};
  }

  static std::unique_ptr<manager_store> make(const std::string& kind) {
    if (kind == "dict" || kind == "namespace")
      return make_dict_store(kind);
    if (kind == "list")
      return make_list_store();
    if (auto store = make_object_store(kind))
      return store;
    throw op_error(errc::unknown_actor_name,
                   "no managed type '" + kind + "' (dict, list, namespace, or MPROC_MANAGED)");
  }
};

caf::behavior mproc_manager(caf::stateful_actor<manager_state>* self) {
  return {
    [self](m_call_atom, std::uint64_t object, caf::atom_value op,
           manager_args& args) -> caf::result<manager_reply> {
      try {
        auto reply = self->state.run(object, op, args);
        if (self->state.stopping)
          self->quit();
        return reply;
      } catch (const op_error& e) {
        return make_error(e.code, e.what());
      } catch (const error& e) {
        return e.reason();
      } catch (const std::exception& e) {  // bad_alloc, mostly: the manager goes on
        log::warn("manager: ", e.what());
        return make_error(errc::bad_arguments, e.what());
      } catch (...) {  // a registered method threw something else: the manager goes on
        return make_error(errc::task_failed, "an operation threw a non-std::exception");
      }
    },
  };
}

const bool registered = register_actor(make_actor_entry<&mproc_manager>("mproc_manager"));

} // namespace

caf::actor spawn_local_manager(caf::actor_system& sys) {
  // Its own thread: in a node whose few scheduler threads all wait in blocking calls to it,
  // a scheduled manager would never run.
  return sys.spawn<caf::detached>(mproc_manager);
}

const char* manager_actor_name() {
  (void)registered;
  return "mproc_manager";
}

} // namespace mproc::detail
