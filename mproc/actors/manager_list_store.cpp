// The manager's list: encoded items, indexed and sliced as Python's list is.
#include <algorithm>
#include <numeric>

#include "mproc/actors/manager_store.hpp"

namespace mproc::detail {

namespace {

class list_store final : public manager_store {
public:
  std::string_view kind() const override { return "list"; }

  manager_reply call(caf::atom_value op, manager_args& args) override {
    switch (op_id(op)) {
      case op_id("append"):
        expect_args(args, 1, "append");
        items_.push_back(std::move(args[0]));
        return {};
      case op_id("extend"):
        std::move(args.begin(), args.end(), std::back_inserter(items_));
        return {};
      case op_id("insert"): return insert(args);
      case op_id("get"):
        expect_args(args, 1, "get");
        return {items_[index_of(args[0])]};
      case op_id("set"):
        expect_args(args, 2, "set");
        items_[index_of(args[0])] = std::move(args[1]);
        return {};
      case op_id("del"):
        expect_args(args, 1, "del");
        items_.erase(items_.begin() + static_cast<std::ptrdiff_t>(index_of(args[0])));
        return {};
      case op_id("slice"): return slice(args);
      case op_id("pop"): return pop(args);
      case op_id("remove"): return remove(args);
      case op_id("index"): return index(args);
      case op_id("count"):
        expect_args(args, 1, "count");
        return {encoded(static_cast<std::uint64_t>(std::count(items_.begin(), items_.end(), args[0])))};
      case op_id("has"):
        expect_args(args, 1, "has");
        return {encoded(std::find(items_.begin(), items_.end(), args[0]) != items_.end())};
      case op_id("len"):
        expect_args(args, 0, "len");
        return {encoded(static_cast<std::uint64_t>(items_.size()))};
      case op_id("sort"): return sort(args);
      case op_id("reverse"):
        expect_args(args, 0, "reverse");
        std::reverse(items_.begin(), items_.end());
        return {};
      case op_id("clear"):
        expect_args(args, 0, "clear");
        items_.clear();
        return {};
      case op_id("all"):
        expect_args(args, 0, "all");
        return items_;
      default:
        no_such_op("list", op);
    }
  }

private:
  // Python's l[i]: negative counts from the end; IndexError outside.
  std::size_t index_of(const bytes& arg) const {
    auto i = int_arg(arg);
    auto n = static_cast<std::int64_t>(items_.size());
    if (i < 0)
      i += n;
    if (i < 0 || i >= n)
      throw op_error(errc::out_of_range, "IndexError: list index out of range");
    return static_cast<std::size_t>(i);
  }

  // A slice bound as Python clamps it: nil is the end given, negative counts from the end.
  std::size_t bound(const bytes& arg, std::size_t if_nil) const {
    auto i = optional_int_arg(arg);
    if (!i)
      return if_nil;
    auto n = static_cast<std::int64_t>(items_.size());
    auto x = *i < 0 ? std::max<std::int64_t>(*i + n, 0) : std::min(*i, n);
    return static_cast<std::size_t>(x);
  }

  manager_reply insert(manager_args& args) {
    expect_args(args, 2, "insert");
    auto at = bound(args[0], items_.size());
    items_.insert(items_.begin() + static_cast<std::ptrdiff_t>(at), std::move(args[1]));
    return {};
  }

  manager_reply slice(const manager_args& args) const {
    expect_args(args, 2, "slice");
    auto from = bound(args[0], 0), to = bound(args[1], items_.size());
    if (from >= to)
      return {};
    return {items_.begin() + static_cast<std::ptrdiff_t>(from),
            items_.begin() + static_cast<std::ptrdiff_t>(to)};
  }

  manager_reply pop(const manager_args& args) {
    expect_args(args, 0, 1, "pop");
    if (items_.empty())
      throw op_error(errc::out_of_range, "IndexError: pop from empty list");
    auto at = args.empty() ? items_.size() - 1 : index_of(args[0]);
    auto out = std::move(items_[at]);
    items_.erase(items_.begin() + static_cast<std::ptrdiff_t>(at));
    return {std::move(out)};
  }

  [[noreturn]] static void not_in_list(const bytes& x) {
    throw op_error(errc::not_found, "ValueError: " + value_arg(x).repr() + " is not in list");
  }

  manager_reply remove(const manager_args& args) {
    expect_args(args, 1, "remove");
    auto i = std::find(items_.begin(), items_.end(), args[0]);
    if (i == items_.end())
      throw op_error(errc::not_found, "ValueError: list.remove(x): x not in list");
    items_.erase(i);
    return {};
  }

  // index(x[, start[, stop]]), the bounds clamped as a slice's.
  manager_reply index(const manager_args& args) const {
    expect_args(args, 1, 3, "index");
    auto from = args.size() > 1 ? bound(args[1], 0) : 0;
    auto to = args.size() > 2 ? bound(args[2], items_.size()) : items_.size();
    for (auto i = from; i < to; ++i)
      if (items_[i] == args[0])
        return {encoded(static_cast<std::uint64_t>(i))};
    not_in_list(args[0]);
  }

  // Items compared as Python compares them (mproc::value); the list is left as it was when
  // two cannot be compared (Python leaves it half-sorted).
  manager_reply sort(const manager_args& args) {
    expect_args(args, 0, 1, "sort");
    bool reverse = !args.empty() && bool_arg(args[0]);
    std::vector<value> keys;
    keys.reserve(items_.size());
    for (auto& x : items_)
      keys.push_back(value_arg(x));
    std::vector<std::size_t> order(items_.size());
    std::iota(order.begin(), order.end(), std::size_t{0});
    try {
      std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
        return reverse ? std::is_gt(compare(keys[a], keys[b]))
                       : std::is_lt(compare(keys[a], keys[b]));
      });
    } catch (const std::invalid_argument& e) {
      throw op_error(errc::bad_arguments, std::string{"TypeError: "} + e.what());
    }
    std::vector<bytes> sorted;
    sorted.reserve(items_.size());
    for (auto i : order)
      sorted.push_back(std::move(items_[i]));
    items_ = std::move(sorted);
    return {};
  }

  std::vector<bytes> items_;
};

} // namespace

std::unique_ptr<manager_store> make_list_store() { return std::make_unique<list_store>(); }

} // namespace mproc::detail
