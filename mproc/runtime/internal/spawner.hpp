// Exec-self: start this program again as a child node, connected by a socketpair.
//
// The child gets its end of the socketpair as fd 3 and the hidden arguments
//   <argv0> --mproc-child <parent pid> <process name>
// which node's constructor recognises (parse_child_args). Everything else the child needs
// (which actor to run, with which arguments) arrives as frames on fd 3.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <sys/types.h>

namespace mproc::detail {

inline constexpr int child_link_fd = 3;
inline constexpr const char* child_flag = "--mproc-child";

struct child_args {
  pid_t parent = 0;
  std::string name;
};

// The hidden arguments, if this process was started as a child node.
std::optional<child_args> parse_child_args(int argc, char** argv);

struct spawned_child {
  pid_t pid = 0;
  int pidfd = -1;    // readable once the child ended; waited on by the loop
  int link_fd = -1;  // the parent's end of the socketpair
};

// Starts `executable` as a child node. Throws std::system_error (ENOENT, EACCES, ...).
// Must run on the thread that outlives the child: PR_SET_PDEATHSIG fires when *the thread*
// that created the child ends (prctl(2)), so the node's I/O thread does this.
spawned_child spawn_child(const std::string& executable, const std::string& argv0,
                          const std::string& name);

// What a spawned program holds: descriptors 0, 1, 2 and its link as 3, nothing else (as
// Python's children: a pipe end the node holds must not stay open in a child). A server gets
// /dev/null as 0: it must not read what is typed; its children get the node's 0 with each
// request.
enum class spawn_io { child, server };

// posix_spawn of `executable` with `args` (argv, from argv[0]) and `env`, `fd` as its fd 3
// (child_link_fd), default signal dispositions and an empty signal mask. Throws
// std::system_error.
pid_t spawn_program(const std::string& executable, const std::vector<std::string>& args,
                    char* const* env, int fd, spawn_io io = spawn_io::child);

// Opens the pidfd of `pid`, a child of this process just started; on failure kills and
// reaps the child, closes `link_fd` and throws std::system_error.
spawned_child adopt_child(pid_t pid, int link_fd);

// Reported when a child ended but its status went to another waiter.
inline constexpr int unknown_exit_status = 255;

// Reaps `pid` if it ended: its exit code in Python's convention, nullopt if still running,
// unknown_exit_status if something else reaped it (which would otherwise look like "still
// running" forever).
std::optional<int> reap(pid_t pid);

// The absolute path of this program.
std::string self_executable();

// In a child, first thing: die with the parent (PR_SET_PDEATHSIG, then a parent-pid check
// for a parent that died before the prctl).
void die_with_parent(pid_t expected_parent);

} // namespace mproc::detail
