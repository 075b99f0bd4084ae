// The manager's side of one shared object: a store of msgpack-encoded bytes that runs the
// operations its proxies send (actors/manager_protocol.hpp). Stores run on the manager
// actor only, one operation at a time.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

#include <caf/actor_addr.hpp>
#include <caf/atom.hpp>
#include <caf/response_promise.hpp>

#include "mproc/actors/manager_protocol.hpp"
#include "mproc/runtime/errors.hpp"
#include "mproc/serialization/value.hpp"

namespace mproc::detail {

// An operation's atom as a number to switch on: caf::atom_value is an enum with no
// enumerators, so `case caf::atom("get")` warns (-Wswitch) in every store.
constexpr std::uint64_t op_id(caf::atom_value op) {
  return static_cast<std::uint64_t>(op);
}
template <std::size_t N>
constexpr std::uint64_t op_id(const char (&name)[N]) {
  return static_cast<std::uint64_t>(caf::atom(name));
}

// An operation that fails as Python's would raise: KeyError, IndexError, ValueError ...
// The manager answers it with make_error(code, text).
struct op_error : std::runtime_error {
  op_error(errc c, const std::string& text) : std::runtime_error{text}, code{c} {}
  errc code;
};

// What an operation that waits (an event's wait, a lock's acquire, a queue's get) may ask of
// the manager while it runs.
class manager_context {
public:
  virtual ~manager_context() = default;
  // The caller's answer, to deliver later; the operation then returns std::nullopt.
  virtual caf::response_promise defer() = 0;
  // Calls expire(token) on this object after `delay` (a waiter's timeout).
  virtual void expire_after(std::chrono::milliseconds delay, std::uint64_t token) = 0;
  // The process that sent the operation, watched: once it ends, every object's
  // sender_down(it) runs. Throws op_error bad_arguments when the operation has no sender
  // to answer (a wait from nobody could never be answered).
  virtual caf::actor_addr sender() = 0;
};

class manager_store {
public:
  virtual ~manager_store() = default;
  // "dict", "list", "namespace", or a registered type's name.
  virtual std::string_view kind() const = 0;
  // Runs `op` on `args`. Throws op_error.
  virtual manager_reply call(caf::atom_value op, manager_args& args) = 0;
  // The same for an operation that may wait: nullopt when it deferred its answer.
  virtual std::optional<manager_reply> call_waiting(caf::atom_value op, manager_args& args,
                                                    manager_context&) {
    return call(op, args);
  }
  // A waiter's timeout passed (manager_context::expire_after).
  virtual void expire(std::uint64_t) {}
  // A process that sent operations ended: its waiters go, what it held is given back.
  virtual void sender_down(const caf::actor_addr&) {}
  // The object goes (released, or the manager stops): every waiter is answered with `why`.
  virtual void stop_waiters(const caf::error& /*why*/) {}
  // How many calls wait on it (introspection, tests).
  virtual std::size_t waiting() const { return 0; }
  // Whether the wait of `token` (given to expire_after) still waits.
  virtual bool waits(std::uint64_t /*token*/) const { return false; }
};

std::unique_ptr<manager_store> make_dict_store(std::string_view kind);
std::unique_ptr<manager_store> make_list_store();
// Python's SyncManager types: Event, Lock, Value (holding `initial`) and Queue.
std::unique_ptr<manager_store> make_event_store();
std::unique_ptr<manager_store> make_lock_store();
std::unique_ptr<manager_store> make_value_store(bytes initial);
std::unique_ptr<manager_store> make_queue_store(std::uint64_t maxsize);
// A store holding a new object of the type registered as `kind`; null when none is.
std::unique_ptr<manager_store> make_object_store(std::string_view kind);

// ---- reading arguments and writing results ---------------------------------------------

// Throws op_error bad_arguments: "a list has no operation 'x'".
[[noreturn]] void no_such_op(std::string_view kind, caf::atom_value op);

// Throws op_error bad_arguments unless `args` has `n` entries (or `n` to `max`).
void expect_args(const manager_args& args, std::size_t n, std::size_t max, const char* op);
inline void expect_args(const manager_args& args, std::size_t n, const char* op) {
  expect_args(args, n, n, op);
}
// One argument decoded. Throws op_error bad_arguments naming what it holds instead.
std::int64_t int_arg(const bytes& arg);
std::optional<std::int64_t> optional_int_arg(const bytes& arg);  // nil is nullopt
bool bool_arg(const bytes& arg);
std::string string_arg(const bytes& arg);
// A wait's timeout: milliseconds (negative is 0), or nil for ever.
std::optional<std::chrono::milliseconds> wait_arg(const bytes& arg);
value value_arg(const bytes& arg);
// Re-encodes `arg` the one way mproc encodes its value (smallest integer and string headers,
// floats as float64), so that keys and items compare by bytes whoever encoded them. Throws
// op_error bad_arguments when it is not one msgpack value mproc::value can hold.
void canonicalize(bytes& arg);
// One result encoded.
bytes encoded(std::uint64_t x);
bytes encoded(bool x);
bytes encoded(const value& x);

} // namespace mproc::detail
