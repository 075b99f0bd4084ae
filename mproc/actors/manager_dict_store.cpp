// The manager's dict (and Namespace, a dict of attribute names): encoded keys to encoded
// values, in insertion order as Python's dicts keep it.
#include <list>
#include <unordered_map>

#include "mproc/actors/manager_store.hpp"

namespace mproc::detail {

namespace {

class dict_store final : public manager_store {
public:
  explicit dict_store(std::string_view kind) : kind_{kind} {}
  dict_store(const dict_store&) = delete;  // index_ views the keys in order_
  dict_store& operator=(const dict_store&) = delete;

  std::string_view kind() const override { return kind_; }

  manager_reply call(caf::atom_value op, manager_args& args) override {
    switch (op_id(op)) {
      case op_id("get"): return get(args);
      case op_id("getitem"): return getitem(args);
      case op_id("set"): return set(args);
      case op_id("del"): return del(args);
      case op_id("has"):
        expect_args(args, 1, "has");
        return {encoded(find(args[0]) != nullptr)};
      case op_id("len"):
        expect_args(args, 0, "len");
        return {encoded(static_cast<std::uint64_t>(order_.size()))};
      case op_id("keys"): return listing(args, true, false);
      case op_id("values"): return listing(args, false, true);
      case op_id("items"): return listing(args, true, true);
      case op_id("update"): return update(args);
      case op_id("pop"): return pop(args);
      case op_id("popitem"): return popitem(args);
      case op_id("setdefault"): return setdefault(args);
      case op_id("clear"):
        expect_args(args, 0, "clear");
        index_.clear();
        order_.clear();
        return {};
      default:
        no_such_op(kind_, op);
    }
  }

private:
  using entry = std::pair<std::string, bytes>;
  using position = std::list<entry>::iterator;

  entry* find(const bytes& key) {
    auto i = index_.find(std::string_view{key.data(), key.size()});
    return i == index_.end() ? nullptr : &*i->second;
  }

  // Python's KeyError (AttributeError for a Namespace), naming the key as repr() would.
  [[noreturn]] void missing(const bytes& key) const {
    std::string shown;
    try {
      shown = value_arg(key).repr();
    } catch (const op_error&) {
      shown = "<undecodable key>";
    }
    if (kind_ == "namespace")
      throw op_error(errc::no_such_key, "'Namespace' object has no attribute " + shown);
    throw op_error(errc::no_such_key, "KeyError: " + shown);
  }

  // A Namespace's keys are attribute names: strings (Python's take nothing else). Any other,
  // from a client in another language, would make every C++ process's names() and repr() of
  // it fail.
  void check_key(const bytes& key) const {
    if (kind_ != "namespace" || key.empty())
      return;
    auto first = static_cast<unsigned char>(key[0]);
    bool str = (first >= 0xa0 && first <= 0xbf) || (first >= 0xd9 && first <= 0xdb);
    if (!str)
      throw op_error(errc::bad_arguments, "a Namespace's attribute names are strings, not "
                                            + value_arg(key).repr());
  }

  void store(bytes& key, bytes& val) {
    if (auto e = find(key)) {
      e->second = std::move(val);
      return;
    }
    order_.emplace_back(std::string{key.data(), key.size()}, std::move(val));
    auto last = std::prev(order_.end());
    index_.emplace(last->first, last);
  }

  // Removes the entry at `at`, handing back its value.
  bytes take(position at) {
    auto out = std::move(at->second);
    index_.erase(at->first);
    order_.erase(at);
    return out;
  }

  manager_reply get(manager_args& args) {
    expect_args(args, 1, "get");
    if (auto e = find(args[0]))
      return {e->second};
    return {};  // the proxy decides: KeyError, nullopt or its default
  }

  manager_reply getitem(manager_args& args) {
    expect_args(args, 1, "getitem");
    if (auto e = find(args[0]))
      return {e->second};
    missing(args[0]);
  }

  manager_reply set(manager_args& args) {
    expect_args(args, 2, "set");
    check_key(args[0]);
    store(args[0], args[1]);
    return {};
  }

  manager_reply del(manager_args& args) {
    expect_args(args, 1, "del");
    auto i = index_.find(std::string_view{args[0].data(), args[0].size()});
    if (i == index_.end())
      return {encoded(false)};
    take(i->second);
    return {encoded(true)};
  }

  manager_reply listing(const manager_args& args, bool keys, bool values) const {
    expect_args(args, 0, "keys, values or items");
    manager_reply out;
    out.reserve(order_.size() * (keys && values ? 2 : 1));
    for (auto& [k, v] : order_) {
      if (keys)
        out.emplace_back(k.begin(), k.end());
      if (values)
        out.push_back(v);
    }
    return out;
  }

  manager_reply update(manager_args& args) {
    if (args.size() % 2 != 0)
      throw op_error(errc::bad_arguments, "update takes keys and values in pairs");
    for (std::size_t i = 0; i < args.size(); i += 2)
      check_key(args[i]);  // all first: an update is done whole or not at all
    for (std::size_t i = 0; i < args.size(); i += 2)
      store(args[i], args[i + 1]);
    return {};
  }

  // pop(key) raises KeyError when it is missing; pop(key, default) returns the default.
  manager_reply pop(manager_args& args) {
    expect_args(args, 1, 2, "pop");
    auto i = index_.find(std::string_view{args[0].data(), args[0].size()});
    if (i != index_.end())
      return {take(i->second)};
    if (args.size() == 2)
      return {std::move(args[1])};
    missing(args[0]);
  }

  // The entry inserted last, as Python's popitem (LIFO): [key, value].
  manager_reply popitem(const manager_args& args) {
    expect_args(args, 0, "popitem");
    if (order_.empty())
      throw op_error(errc::no_such_key, "KeyError: 'popitem(): dictionary is empty'");
    auto last = std::prev(order_.end());
    bytes key(last->first.begin(), last->first.end());
    return {std::move(key), take(last)};
  }

  manager_reply setdefault(manager_args& args) {
    expect_args(args, 2, "setdefault");
    check_key(args[0]);
    if (auto e = find(args[0]))
      return {e->second};
    auto out = args[1];
    store(args[0], args[1]);
    return {std::move(out)};
  }

  std::string kind_;
  std::list<entry> order_;
  std::unordered_map<std::string_view, position> index_;  // views of the keys in order_
};

} // namespace

std::unique_ptr<manager_store> make_dict_store(std::string_view kind) {
  return std::make_unique<dict_store>(kind);
}

} // namespace mproc::detail
