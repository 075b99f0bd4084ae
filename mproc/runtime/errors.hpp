// mproc's errors: codes in CAF's error type (category "mproc") for actors, and exceptions
// for the blocking face. Every failure a user can act on has its own code.
#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>

#include <caf/error.hpp>

namespace mproc {

enum class errc : std::uint8_t {
  none = 0,
  process_exited,        // the process hosting the actor ended; context: (text, exit code)
  link_lost,             // the connection to the actor's process closed, exit status unknown
  unknown_actor_name,    // spawn of a name no MPROC_ACTOR registered
  unknown_message_type,  // a message element whose type no MPROC_MESSAGE registered
  bad_message,           // a message that could not be decoded (wrong shape, bad tag, ...)
  bad_arguments,         // spawn arguments that do not fit the actor function
  spawn_failed,          // the child could not be executed or died before its handshake
  no_such_actor,         // a message to an actor that ended or was never exported
  frame_too_large,       // a message larger than the peer's maximum frame size
  timeout,               // a blocking call ran out of time
  protocol_error,        // a peer broke the protocol; the link was closed
  node_shutdown,         // the node is shutting down
  full,                  // a bounded queue is full (Python's queue.Full)
  empty,                 // a queue or connection has nothing to take (Python's queue.Empty)
  closed,                // closed queue or connection, or its other end is gone (EOF)
  not_running,           // a supervised child is restarting or stopped
  gave_up,               // a supervisor exceeded its restart intensity and stopped
  task_failed,           // a pool task threw, or its worker died too often running it
  auth_failed,           // a node connection whose peer did not prove the authkey
  unreachable,           // a node that cannot be connected to (refused, no route, timeout)
  owner_died,            // a lock's holder died holding it; the data it guarded may be torn
  broken_barrier,        // a barrier was aborted, reset, timed out or lost a party (Python's
                         // BrokenBarrierError)
  command_failed,        // a program run by subprocess ended with a non-zero returncode
                         // (Python's CalledProcessError)
  no_such_key,           // a Manager dict has no such key, a Namespace no such attribute
                         // (Python's KeyError, AttributeError)
  out_of_range,          // an index outside a Manager list (Python's IndexError)
  not_found,             // a Manager list does not hold the value (Python's ValueError)
  actor_failed,          // an actor ended by an exception it did not catch; context:
                         // "<type>: <what>" (Python's traceback of a Process target)
  unexpected_message,    // an actor has no handler for a message of these types
};

std::string to_string(errc x);

// A caf::error in category "mproc" with a human-readable text in its context.
caf::error make_error(errc x, std::string text = {});
// process_exited with Python's exit code convention: >= 0 exit status, < 0 signal number.
caf::error make_exit_error(int exitcode);

// The mproc code of `e`, or errc::none when it is not an mproc error.
errc code_of(const caf::error& e);
// The exit code carried by a process_exited error.
std::optional<int> exit_code_of(const caf::error& e);
// "process exited with code 3", "process killed by SIGKILL (-9)"
std::string describe_exit(int exitcode);

// "<type>: <what>" of the exception being handled (call it inside a catch block), as the
// last line of Python's traceback; one that is not a std::exception is named by its type.
std::string describe_current_exception();

// Thrown by the blocking calls (node::request, process::start, ...).
class error : public std::runtime_error {
public:
  error(caf::error reason, const std::string& what);
  const caf::error& reason() const { return reason_; }
  errc code() const { return code_of(reason_); }

private:
  caf::error reason_;
};

} // namespace mproc
