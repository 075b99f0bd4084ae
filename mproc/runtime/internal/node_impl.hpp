// The node behind mproc::node: the CAF actor system, the I/O loop, the table of actors
// reachable from other processes, the peers, and the child processes.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/expected.hpp>

#include "mproc/runtime/internal/commands.hpp"
#include "mproc/runtime/internal/fork_server.hpp"
#include "mproc/runtime/internal/inspector.hpp"
#include "mproc/runtime/internal/io_loop.hpp"
#include "mproc/runtime/internal/listener.hpp"
#include "mproc/runtime/internal/peer.hpp"
#include "mproc/runtime/internal/process_state.hpp"
#include "mproc/runtime/internal/requester.hpp"
#include "mproc/runtime/internal/spawner.hpp"
#include "mproc/runtime/internal/weak_ref.hpp"
#include "mproc/runtime/node.hpp"

namespace mproc::detail {

class node_impl {
public:
  // A root node, or with `child` set, a child node (run_child() then takes over).
  node_impl(node_options options, std::optional<child_args> child);
  ~node_impl();

  // Ends the node while it is still reachable (this_node() works throughout): joins
  // non-daemon children, stops daemon ones, closes links, stops the loop, waits for actors.
  // New processes are refused from its start on. Idempotent.
  void shutdown();

  caf::actor_system& system() { return *system_; }
  std::uint64_t id() const { return id_; }
  // Whether node `n`, of id `id`, has not begun its destruction (a process handle may
  // outlive its node).
  static bool alive(const node_impl* n, std::uint64_t id);
  const std::string& name() const { return name_; }
  const node_options& options() const { return options_; }
  io_loop& loop() { return loop_; }
  // True when `sender` is node::request's requester and its call for `mid` no longer waits.
  bool gave_up(const caf::weak_actor_ptr& sender, caf::message_id mid);

  // Actors other processes may address: every local actor (or proxy) whose reference was
  // sent out. Weak: a reference held only by another process does not keep an actor alive;
  // actors spawned on a peer's behalf are kept alive by the node until they end.
  wire::actor_ref export_actor(const caf::strong_actor_ptr& actor);
  caf::strong_actor_ptr local_actor(std::uint64_t id);

  // node::keep_alive: idempotent, ignores proxies.
  void keep_alive(const caf::actor& a);
  void at_exit(std::function<void()> fn);

  // Loop thread, for a peer's spawn envelope.
  caf::expected<caf::actor> spawn_for(peer& from, const std::string& actor,
                                      const caf::message& args, bool main);
  // Loop thread: a peer closed (or was closed); decides the reason and fails it.
  void on_peer_closed(const std::shared_ptr<peer>& p, const std::string& why);
  void on_shutdown_requested(peer& from, const std::string& why);

  caf::expected<caf::message> request(const caf::actor& dest, caf::message msg,
                                      std::chrono::nanoseconds timeout);

  // Named actors. A registered actor stays alive (and registered) until it ends.
  caf::error register_name(const std::string& name, const caf::actor& actor);
  bool unregister_name(const std::string& name, const caf::actor_addr& actor);
  // Resolves `name` here, else asks the parent (which asks its own); `done` runs on the
  // loop thread, or at once in the caller's when the name is local.
  void lookup(const std::string& name, peer::lookup_callback done);

  // Blocks until the child's actor runs or start fails (state->start_error).
  void start_process(const std::shared_ptr<process_state>& state);
  // Returns at once; state->on_started runs when the start settled.
  void start_process_async(const std::shared_ptr<process_state>& state);
  std::vector<std::shared_ptr<process_state>> live_children();
  std::string next_process_name();

  // TCP between nodes. listen: any thread but the loop's; the port bound.
  std::uint16_t listen(const endpoint& at, link_credentials as);
  // Connects, authenticates and waits for the remote node's hello. Throws mproc::error
  // (unreachable, timeout, auth_failed).
  std::shared_ptr<peer> connect(const endpoint& to, const link_credentials& as,
                                std::chrono::milliseconds timeout);

  // Node mode: blocks until stop_waiting(), or (unless `forever`) until a node has connected
  // and every connected node is gone.
  void wait_for_roots(bool forever);
  void stop_waiting();

  command_table& commands() { return commands_; }

  // This node's snapshot for introspection, its children's nodes asked within `deadline`
  // (node_inspect.cpp; docs/introspection.md lists the fields). Not on a loop thread.
  value inspect(inspect_clock::time_point deadline);

  // Child mode: serve the parent until the main actor ends or the parent goes; then exit.
  [[noreturn]] void run_child();

private:
  // Loop thread: starts the child by its start method (or the node's).
  void launch(const std::shared_ptr<process_state>& state);
  void launch_by_exec(const std::shared_ptr<process_state>& state);
  // A child whose start was given up, or a daemon arriving while the node shuts down.
  bool unwanted(const process_state& state);
  // Loop thread: the child process exists; connects it and asks it to run its actor.
  // `how`: the method it was started by (a fork server's start may have gone by exec).
  void attach(const std::shared_ptr<process_state>& state, const spawned_child& c,
              start_method how);

  // The fork server (node_forks.cpp), loop thread only.
  struct fork_start {
    std::shared_ptr<process_state> state;
    int link_fd = -1;
    std::uint64_t seq = 0;
    std::size_t slot = 0;  // in the server's birth register
  };
  // The node's children fork from a server unless their executable is another program.
  bool uses_fork_server() const;
  // (Re)starts the server; false, logged, when it cannot start.
  bool start_fork_server();
  // A dead server: is another one worth starting?
  bool fork_server_worth_restarting() const;
  // Starts go by exec after a run of dying servers (the counts below): is it time to try
  // one server again?
  bool fork_server_retry_due() const;
  // When a dead server is not worth another: sets the time to try again (where the counts
  // were the reason), and says what starts do meanwhile (for the log).
  std::string fork_server_retry_later();
  // Hands the start to the server; false when there is none (the caller execs).
  bool fork_later(const std::shared_ptr<process_state>& state);
  void send_fork_requests();
  // A timer per request: a server silent past it is declared hung.
  void watch_fork_answer(std::uint64_t seq);
  void take_fork_answers();   // the answers there now: children attached
  void after_fork_answers();  // then more requests, or the server's end
  void on_fork_answers();
  // The server ended or hung: buried; the children it forked without answering are
  // attached (found in its birth register: else they would be zombies nobody reaps), the
  // starts it had not forked start again.
  void fork_server_ended();
  void drop_fork_starts();  // shutdown, after the loop stopped
  // Checks a start may proceed and records the child; false (start_error set) otherwise.
  bool admit(const std::shared_ptr<process_state>& state);
  // mtx_ held. Children that ended, but for the latest `keep`, are let go: returned, for
  // the caller to drop after releasing mtx_.
  std::vector<std::shared_ptr<process_state>> forget_ended_children_locked(std::size_t keep);
  static constexpr std::size_t ended_children_kept = 32;
  void start_settled(const std::shared_ptr<process_state>& state);
  void on_child_started(const std::shared_ptr<process_state>& state, caf::expected<caf::actor> r);
  void on_child_exited(const std::shared_ptr<process_state>& state);
  void on_child_link_closed(const std::shared_ptr<process_state>& child,
                            const std::shared_ptr<peer>& p, const std::string& why);
  void settle_child_link(const std::shared_ptr<process_state>& state, const std::string& why);
  void fail_start(const std::shared_ptr<process_state>& state, caf::error why);
  void finish_children();
  void run_exit_hooks();
  // Introspection (node_inspect.cpp): the node inspect_in_child() asks, and the parts of a
  // snapshot.
  void track_for_inspection(bool on);
  value::array_t inspect_children(inspect_clock::time_point deadline);
  void request_exit(int code);
  void close_peers();
  void end_spawned_for(const peer& gone);
  // Loop thread: a peer node on an authenticated socket.
  std::shared_ptr<peer> adopt_remote(authenticated_socket s, const std::string& from);
  // Loop thread: heartbeats to a remote peer, and its closing when it falls silent.
  void keep_heartbeat(const std::weak_ptr<peer>& p);

  node_options options_;
  std::optional<child_args> child_;
  std::string name_;
  std::uint64_t id_;
  std::string executable_;  // what children run, as shown (argv[0], `mproc ps`)
  std::string exec_path_;   // the path children are started from
  std::string argv0_;
  start_method method_ = start_method::exec;  // the node's default for its children
  // Loop thread (and shutdown, after the loop); null until started, or when it cannot be.
  std::unique_ptr<fork_server> fork_server_;
  std::uint64_t fork_token_ = 0;                // its control socket in the loop
  std::deque<fork_start> forks_sent_;           // answered in this order
  std::deque<std::shared_ptr<process_state>> forks_waiting_;  // beyond the in-flight bound
  std::uint64_t fork_seq_ = 0;
  // Servers in a row that died with requests in flight and forked no child; at this many,
  // children start by exec.
  static constexpr int max_unserved_fork_servers = 3;
  int unserved_fork_servers_ = 0;
  // The same for servers killed by SIGKILL before they served at all (from outside while
  // the program's main() ran, say: that says less of whether a server can serve here than
  // a crash or an exit there, which count above).
  static constexpr int max_unready_fork_servers = 10;
  int unready_fork_servers_ = 0;
  // The server died as a request was written to it: a start was in flight, so a server not
  // yet ready counts above (on one CPU one killed in its main() often dies before the
  // write); a ready one killed while idle, noticed only at the write, does not.
  bool fork_request_refused_ = false;
  // Exec for those counts is not for good when the last server was killed from outside
  // (kills come in bursts, and forking is the faster start): the first start after
  // fork_retry_at_ tries one server again, and its death sends starts back to exec for
  // twice as long (up to a minute). A server that serves resets both. The first wait is
  // $MPROC_FORK_SERVER_RETRY_MS (tests), else a second.
  std::optional<std::chrono::milliseconds> fork_retry_wait_;  // none: the first wait next
  std::chrono::steady_clock::time_point fork_retry_at_;
  bool fork_relaunching_ = false;  // fork_server_ended() starting its starts again
  std::chrono::steady_clock::time_point fork_server_started_;
  caf::actor_system_config config_;
  // Before system_: destroyed after it (the requester outlives every actor that might ask).
  caf::actor requester_handle_;  // keeps requester_ alive
  requester* requester_ = nullptr;  // node::request's sender; set in the constructor
  std::unique_ptr<caf::actor_system> system_;
  io_loop loop_;
  command_table commands_{loop_};
  std::unique_ptr<inspector> inspector_;  // a root's introspection socket, until shutdown

  std::mutex exports_mtx_;
  std::unordered_map<std::uint64_t, caf::weak_actor_ptr> exports_;
  std::size_t exports_swept_at_ = 64;
  // The id exported last: its entry stays in the table while the actor lives, and actor ids
  // are never reused, so the same sender's next message needs neither the lock nor the
  // lookup (a stream of sends from one actor took them for every message).
  std::atomic<std::uint64_t> last_export_{0};

  std::mutex mtx_;  // guards the members below
  std::set<std::shared_ptr<peer>> peers_;
  std::vector<std::shared_ptr<process_state>> children_;
  std::unordered_map<std::uint64_t, caf::actor> kept_alive_;
  // What remote peers spawned here, ended when their peer goes (end_spawned_for).
  std::unordered_map<const peer*, std::vector<caf::weak_actor_ptr>> spawned_for_;
  bool keeping_ = true;  // false once shutdown ended what was kept
  std::vector<std::function<void()>> exit_hooks_;
  std::unordered_map<std::string, caf::actor> names_;
  std::shared_ptr<peer> parent_;
  std::unordered_map<const peer*, std::shared_ptr<process_state>> child_of_peer_;
  int process_counter_ = 0;
  std::vector<std::unique_ptr<listener>> listeners_;  // created anywhere, destroyed on the loop
  std::size_t remote_peers_ = 0;       // TCP peers connected now
  std::size_t remote_peers_ever_ = 0;
  bool stop_waiting_ = false;
  std::condition_variable remote_changed_;
  // connect() calls under way, each settled with node_shutdown by close_peers(): a connect
  // whose adoption reaches the loop too late would otherwise wait out its whole timeout.
  std::unordered_map<std::uint64_t, std::function<void(caf::error)>> connecting_;
  std::uint64_t connects_ = 0;

  std::condition_variable exit_requested_;
  std::optional<int> exit_code_;
  bool shutting_down_ = false;
};

// In a new child process: becomes the child node, serves its parent, then exits. (node.cpp)
[[noreturn]] void run_child_node(const child_args& child, node_options options);

// Set by the node constructor; read by current_process_name().
void set_current_process_name(const std::string& name);

} // namespace mproc::detail
