// Start method "forkserver": a single-threaded copy of this program that forks each new
// child on request. A fork of a small idle process costs a tenth of a millisecond; an exec
// of the program, its loading and static initialisation cost milliseconds.
//
// The server is this program executed once more, as Python's forkserver is, with
//   <argv0> --mproc-forkserver <node pid>
// and its control socket on fd 3 (fork_server_protocol.hpp); mproc::init recognises the flag
// and serves (fork_server_main.cpp). It runs with LD_BIND_NOW, so the dynamic linker resolves
// every symbol once in the server instead of lazily in every child (a quarter of a child's
// start-up time otherwise). Being exec'd, it is single-threaded whatever the node was doing,
// its memory is what a fresh program has when it creates its node (what an exec'd child
// has), and it can be started again when it dies.
//
// The server forks with CLONE_PARENT, so each child is the node's own child, exactly as an
// exec'd one: the node reaps it, learns its exit status and signals it through a pidfd, and
// the child dies with the node (PR_SET_PDEATHSIG; the node starts the server from its I/O
// thread, which lives as long as the node).
//
// The node side never blocks on the server: requests are written to a non-blocking socket
// and answers read when the I/O loop sees them.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include <sys/types.h>

#include "mproc/runtime/internal/spawner.hpp"

namespace mproc::detail {

class fork_server {
public:
  // Runs in a new child, connected to its parent on child_link_fd, and never returns.
  using child_main = std::function<void(const child_args&)>;

  // Starts `executable` (shown as `argv0`) as the server. Requests sent before it reaches
  // mproc::init wait in the socket. Throws std::system_error.
  static std::unique_ptr<fork_server> start(const std::string& executable,
                                            const std::string& argv0);

  // The node pid of the hidden arguments, if this process was started as a fork server.
  static std::optional<pid_t> parse_args(int argc, char** argv);
  // In the server process: serves until the node goes, starting children with `run`. Exits
  // at once (code refused_exit_code) if this process runs more than one thread (a fork
  // would copy their locks: the program started threads before creating its node) or the
  // C library's thread layout is not the expected one.
  [[noreturn]] static void serve(pid_t node, const child_main& run);
  static constexpr int refused_exit_code = 3;

  // Kills the server if it still runs, and reaps it. Children it started live on.
  ~fork_server();
  fork_server(const fork_server&) = delete;
  fork_server& operator=(const fork_server&) = delete;

  // Asks for a child named `name`, with this process's current environment, working
  // directory and standard descriptors; returns the node's end of the child's link and the
  // request's slot in the birth register. The answer comes later (answer()). Throws
  // std::system_error; then ended().
  struct sent {
    int link_fd;
    std::size_t slot;
  };
  sent request(const std::string& name);
  // Readable when an answer (or the server's end) is there: watch it in the loop.
  int control_fd() const { return control_; }
  // The next answer: a child's pid, or -errno; nullopt when none is there yet, or when the
  // server ended (then ended()).
  std::optional<int> answer();

  // It has reached serve(): what it was asked before is being answered now.
  bool ready() const { return ready_; }
  // The server can take no more requests: it closed its socket, stopped reading, or was
  // buried.
  bool ended() const { return ended_ || dead_; }
  // Declares the server hung (it did not answer in time): bury() kills it.
  void hang() { ended_ = hung_ = true; }
  bool hung() const { return hung_; }
  // Closes the control socket (remove it from the loop first), kills the server unless it
  // is ending by itself, and reaps it. Idempotent; the destructor does it.
  void bury();
  bool buried() const { return dead_; }
  // The child forked for the request in `slot`, once the server is buried: the kernel
  // wrote its pid into the register as it forked, so a server that died before it could
  // answer has told it all the same. Nullopt: it forked none.
  std::optional<pid_t> forked(std::size_t slot) const;
  // Answered with a child at least once: worth starting again if it dies.
  bool served() const { return served_; }
  pid_t pid() const { return pid_; }
  // Once buried: it exited because it cannot serve in this program (refused_exit_code).
  bool refused() const;
  // Once buried: it was killed by SIGKILL from elsewhere (not declared hung and killed here).
  bool killed() const;
  // Once buried: why it ended, for the node's log.
  std::string epitaph() const;

private:
  // Pids shared with the server (fork_server_protocol.hpp), one slot per request in flight.
  struct birth_register {
    birth_register();  // throws std::system_error
    ~birth_register();
    birth_register(const birth_register&) = delete;
    birth_register& operator=(const birth_register&) = delete;
    int fd = -1;
    pid_t* slots = nullptr;
  };

  fork_server(pid_t pid, int pidfd, int control, std::unique_ptr<birth_register> births)
    : pid_(pid), pidfd_(pidfd), control_(control), births_(std::move(births)) {}

  pid_t pid_;
  int pidfd_;
  int control_;
  bool ready_ = false;
  bool ended_ = false;
  bool dead_ = false;
  bool served_ = false;
  bool hung_ = false;
  int status_ = 0;  // waitpid's, once dead
  std::unique_ptr<birth_register> births_;
  std::size_t next_slot_ = 0;
};

} // namespace mproc::detail
