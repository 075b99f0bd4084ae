// The manager's side of an object of a registered class (actors/managed_type.hpp).
#include "mproc/actors/managed_type.hpp"
#include "mproc/actors/manager_store.hpp"

namespace mproc::detail {

namespace {

class object_store final : public manager_store {
public:
  explicit object_store(const managed_type_entry& type) : type_{type}, object_{type.make()} {}

  std::string_view kind() const override { return type_.name; }

  // ("call", [method, args...]) runs the method; ("methods", []) names them.
  manager_reply call(caf::atom_value op, manager_args& args) override {
    if (op == caf::atom("methods")) {
      manager_reply out;
      for (auto& [name, fn] : type_.methods)
        out.push_back(pack_value(name));
      return out;
    }
    if (op != caf::atom("call") || args.empty())
      throw op_error(errc::bad_arguments,
                     "a " + type_.name + " takes ('call', [method, args...]) or ('methods', [])");
    auto name = string_arg(args[0]);
    auto method = type_.methods.find(name);
    if (method == type_.methods.end())
      throw op_error(errc::bad_arguments, type_.name + " has no method '" + name
                                            + "' (registered with MPROC_MANAGED)");
    args.erase(args.begin());
    try {
      return method->second(object_.get(), args);
    } catch (const managed_method_raised& e) {
      throw op_error(errc::task_failed, type_.name + "." + name + " raised: " + e.what());
    } catch (const error&) {
      throw;  // its arguments or its result could not be converted: already an mproc error
    }
  }

private:
  const managed_type_entry& type_;
  std::shared_ptr<void> object_;
};

} // namespace

std::unique_ptr<manager_store> make_object_store(std::string_view kind) {
  auto type = find_managed_type(kind);
  if (type == nullptr)
    return nullptr;
  return std::make_unique<object_store>(*type);
}

} // namespace mproc::detail
