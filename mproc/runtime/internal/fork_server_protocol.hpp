// What the node and its fork server say to each other on the control socket (fd 3 of the
// server), a private socketpair:
//   request: a u32 length, then NUL-terminated fields: the child's name, which of the
//            node's descriptors 0, 1 and 2 follow (e.g. "012"), the working directory, the
//            request's slot in the birth register (decimal), then the environment. With the
//            length travel (SCM_RIGHTS) the child's end of its link, the standard
//            descriptors named, then the birth register.
//   answer:  an i32 per request, in order: the child's pid, or -errno. Before any, the
//            server writes an i32 0 once it serves.
// The birth register is a memfd of register_slots pids that both map shared: the server
// forks with CLONE_PARENT_SETTID pointing at the request's slot, so the kernel writes the
// child's pid there before the fork returns. A server killed between its fork and its
// answer has told the node all the same (node_forks.cpp).
#pragma once

#include <cstddef>
#include <cstdint>

namespace mproc::detail::fork_protocol {

inline constexpr const char* flag = "--mproc-forkserver";
// Also in the server's environment (the node's pid): a program that constructs its node with
// an argv of its own still becomes the server.
inline constexpr const char* env_var = "MPROC_FORK_SERVER_OF";
// Faults for tests, read by the server when it starts: "die-after-fork" makes it kill itself
// between forking a child and answering (the node learns the child's pid from the birth
// register only); "kill-child-and-die-after-fork" kills the child first (a child that dies
// before its first frame, whose pid nothing else tells); "die-before-fork" as soon as a
// request comes (a server that can never serve), "exit-before-fork" the same by exiting
// (a program that ends there, not a kill); "die-before-ready:N:PATH" makes the first
// N servers (counted in the file PATH) die before they serve.
inline constexpr const char* fault_env_var = "MPROC_FORK_SERVER_FAULT";
inline constexpr std::uint32_t max_request = 16u << 20;
inline constexpr std::size_t max_fds = 5;  // the link, descriptors 0, 1, 2, the register
// Fields before the environment.
inline constexpr std::size_t name_field = 0, stdio_field = 1, cwd_field = 2, slot_field = 3,
                             env_fields = 4;
// Enough for any number of requests in flight (the node keeps a few): slots are reused in
// turn.
inline constexpr std::size_t register_slots = 1024;

// Whole reads and writes; false on EOF or error. On a non-blocking socket a write waits up to
// a second for room (then fails with EAGAIN): the node keeps few requests in flight, so a
// full socket means a server that does not read.
bool wait_writable(int fd);
bool write_all(int fd, const void* data, std::size_t size);
bool read_all(int fd, void* data, std::size_t size);

} // namespace mproc::detail::fork_protocol
