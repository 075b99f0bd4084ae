// A node: the actor runtime of one OS process. Construct it first in main():
//
//   int main(int argc, char** argv) {
//     mproc::node node{argc, argv};        // in a child process: runs the child, never returns
//     auto p = node.spawn_process("squarer", {.name = "sq-1"});
//     auto r = node.request<std::int32_t>(p.actor(), 1s, std::int32_t{7});   // 49
//     p.terminate();
//     p.join(2s);                           // p.exitcode() == -SIGTERM
//   }
//
// Processes start from this same binary run with a hidden flag: each exec'd child, and the
// fork server that forks children (mproc::start_method). The node constructor recognises the
// flag, becomes the child node or the server, and never returns. So nothing in main() before
// the node is constructed should have side effects, nor start threads (the server would
// refuse to fork, and children would be exec'd).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <caf/actor.hpp>
#include <caf/actor_addr.hpp>
#include <caf/fwd.hpp>
#include <caf/make_message.hpp>
#include <caf/message.hpp>

#include "mproc/runtime/authkey.hpp"
#include "mproc/runtime/command.hpp"
#include "mproc/runtime/deadline.hpp"
#include "mproc/runtime/errors.hpp"
#include "mproc/runtime/process.hpp"
#include "mproc/runtime/remote_node.hpp"
#include "mproc/serialization/bytes.hpp"

namespace mproc {

struct node_options;

namespace detail {
class node_impl;
struct node_mode_access;
struct child_args;
[[noreturn]] void run_child_node(const child_args& child, node_options options);
}

struct node_options {
  // This process's name; current_process_name() returns it. Children get process_options::name.
  std::string name = "MainProcess";
  // CAF scheduler threads of this node; 0 means cpu_count().
  std::size_t threads = 0;
  // CAF scheduler threads of each child node: few, since a child mostly hosts one actor.
  std::size_t child_threads = 2;
  // Largest frame this node accepts: bounds what a peer can make it allocate.
  std::uint32_t max_frame = 80u << 20;
  // Unsent bytes per link (to a child, the parent, another node) above which a thread
  // sending a message waits for the other side to read: a process that stops reading
  // bounds the sender's memory to this plus one message per sending thread.
  std::size_t max_link_queue = std::size_t{16} << 20;
  // Links to child processes carry their bytes through shared memory, a ring pair per link
  // (docs/architecture.md, "Shared memory between parent and child"); the socket stays for
  // descriptors and for telling a process's end. false: through the socket, as over TCP.
  bool shared_memory_links = true;
  // Program to exec for child processes; empty means this program (/proc/self/exe).
  // Python's multiprocessing.set_executable().
  std::string executable;
  // How this node creates child processes (see mproc::start_method); empty:
  // $MPROC_START_METHOD, else forkserver.
  std::optional<mproc::start_method> start_method;
  // How long a child may take from exec to running its actor before start() gives up.
  std::chrono::milliseconds start_timeout{10'000};
  // Grace between asking a daemon child to stop (at node exit) and SIGKILL.
  std::chrono::milliseconds daemon_grace{1'000};
  // Nodes over TCP: each side sends a heartbeat every heartbeat_interval, and declares the
  // other down when it heard nothing for heartbeat_timeout (a killed, stopped or cut-off
  // node): monitors of its actors fire and requests to them fail. The silence is measured
  // to the kernel's tick (1–4 ms), so leave the timeout more than that above the interval.
  std::chrono::milliseconds heartbeat_interval{500};
  std::chrono::milliseconds heartbeat_timeout{2'000};
};

// If this process was started as a child node, runs it and never returns; otherwise does
// nothing. node's constructor calls it; call it yourself first in main() when the node is
// created later (a test runner's main, for example).
void init(int argc, char** argv, node_options options = {});

class node {
public:
  // Throws std::invalid_argument for options that cannot work, naming the field.
  node(int argc, char** argv, node_options options = {});
  ~node();
  node(const node&) = delete;
  node& operator=(const node&) = delete;

  caf::actor_system& system();
  std::uint64_t id() const;
  const std::string& name() const;
  // The largest message this node takes (node_options::max_frame), in bytes.
  std::uint32_t max_frame() const;

  // Spawns the actor registered as `actor` (MPROC_ACTOR) in this process.
  // Throws mproc::error (unknown_actor_name, bad_arguments).
  template <class... Ts>
  caf::actor spawn(std::string_view actor, Ts&&... args) {
    return spawn_message(actor, detail::message_of(std::forward<Ts>(args)...));
  }

  // A started child process running `actor`. Throws mproc::error when it cannot start.
  template <class... Ts>
  process spawn_process(std::string actor, process_options options, Ts&&... args) {
    return started({*this, std::move(actor), std::move(options), std::forward<Ts>(args)...});
  }
  // A started child process running `target(args...)`, a plain function registered with
  // MPROC_TASK (runtime/task.hpp), as Python's Process(target=f, args=(...)).start().
  template <class R, class... Params, class... Ts>
    requires(sizeof...(Params) == sizeof...(Ts))
  process spawn_process(R (*target)(Params...), process_options options, Ts&&... args) {
    return started({*this, target, std::move(options), std::forward<Ts>(args)...});
  }
  // A started child process running `target.run()`, an object of a class registered with
  // MPROC_PROCESS_CLASS, as an instance of a Python Process subclass.
  template <class T>
    requires requires(T& t) { t.run(); }
  process spawn_process(T target, process_options options = {}) {
    return started({*this, std::move(target), std::move(options)});
  }

  // Blocking request for code outside actors. Returns the reply's single value (nothing for
  // R = void). Throws mproc::error: errc::timeout, the actor's error, process_exited when
  // its process died, no_such_actor when it ended, bad_message when the reply has another
  // type.
  template <class R = void, class Rep, class Period, class... Ts>
  R request(const caf::actor& dest, std::chrono::duration<Rep, Period> timeout, Ts&&... args) {
    auto reply = request_message(dest, detail::message_of(std::forward<Ts>(args)...),
                                 capped<std::chrono::nanoseconds>(timeout));
    if constexpr (!std::is_void_v<R>) {
      if (!reply.template match_elements<R>())
        throw_unexpected_reply(reply);
      return reply.template get_as<R>(0);
    }
  }

  // Makes `actor` findable by `name` from this process and its descendants, until it ends.
  // Throws mproc::error: bad_arguments when the name is taken here.
  void register_name(const std::string& name, const caf::actor& actor);
  // Removes `name` at once if it names `actor` in this process; false otherwise.
  bool unregister_name(const std::string& name, const caf::actor_addr& actor);
  // The actor registered as `name` here or in an ancestor process. Throws mproc::error:
  // no_such_actor, timeout.
  caf::actor lookup(const std::string& name,
                    std::chrono::milliseconds timeout = std::chrono::seconds{10});

  // How frames between nodes travel (docs/distributed.md, "Encryption").
  enum class link_security {
    tls,  // TLS 1.3 keyed by the authkey: encrypted and authenticated (the default)
    // In clear after the authkey handshake, for clients whose TLS has no pre-shared keys
    // (Python's before 3.13), on a network you trust. A listener given it accepts both.
    plaintext,
  };

  // Accepts other nodes on TCP at `address` ("HOST:PORT"; port 0 picks one) once they prove
  // `key`; returns the port. Loopback unless another address is asked for. Throws
  // mproc::error (bad_arguments, unreachable).
  std::uint16_t listen(const authkey& key, std::string_view address = "127.0.0.1:0",
                       link_security accept = link_security::tls);
  // Connects to a node listening at `address`, both sides proving `key`, within `timeout`
  // (resolving a host name included; each of a name's addresses gets a share). Throws
  // mproc::error: unreachable (worth a retry), timeout, auth_failed, bad_arguments (a
  // malformed address, no such name), node_shutdown (this node began to end).
  remote_node connect(std::string_view address, const authkey& key,
                      std::chrono::milliseconds timeout = std::chrono::seconds{5},
                      link_security security = link_security::tls);

  // Certificate files (PEM) instead of an authkey, for a site with a PKI
  // (docs/distributed.md, "Certificates"): each side presents its certificate and accepts
  // only a peer whose certificate `ca_file` signed. The key file must be mode 0600.
  struct certificates {
    std::string ca_file;
    std::string cert_file;  // this node's certificate, or its chain
    std::string key_file;
  };
  // listen and connect with certificates; the same errors, and bad_arguments for a file
  // that cannot be used.
  std::uint16_t listen(const certificates& files, std::string_view address = "127.0.0.1:0");
  remote_node connect(std::string_view address, const certificates& files,
                      std::chrono::milliseconds timeout = std::chrono::seconds{5});

  // Keeps a local actor alive until it ends or this node ends (it is then sent an exit with
  // user_shutdown), for actors that other processes may use after this process dropped its
  // own handles — a queue whose handle was sent to a child. No effect on a reference to an
  // actor in another process, or on an actor already kept.
  void keep_alive(const caf::actor& actor);
  // Runs `fn` once when this process is about to end: a child after its actor ended, the
  // root when the node is destroyed. Hooks run before children are joined and links closed,
  // so they may still talk to other processes (and should bound how long they wait).
  void at_exit(std::function<void()> fn);

  // Child processes of this node that have not ended yet (Python's active_children()).
  std::vector<process> active_children();

  // Starts a program that is not an mproc node; the node reaps it (runtime/command.hpp).
  // Throws mproc::error spawn_failed naming the program or directory and the errno.
  command start_command(const command_spec& spec);

  // The non-template cores of the calls above.
  caf::actor spawn_message(std::string_view actor, const caf::message& args);
  caf::message request_message(const caf::actor& dest, caf::message msg,
                               std::chrono::nanoseconds timeout);

private:
  static process started(process p) {
    p.start();
    return p;
  }

  friend class process;
  friend struct detail::node_mode_access;
  friend void detail::run_child_node(const detail::child_args&, node_options);
  struct child_tag {};
  node(child_tag, node_options options, std::unique_ptr<detail::node_impl> impl);
  [[noreturn]] void throw_unexpected_reply(const caf::message& reply);

  std::unique_ptr<detail::node_impl> impl_;
};

// This process's node, for code that has no reference to it (actors in a child process).
// Throws std::logic_error when no node exists.
node& this_node();

} // namespace mproc
