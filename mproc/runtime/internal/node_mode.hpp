// Node mode: a program started as `prog --mproc-node --listen HOST:PORT --authkey-file F`
// becomes a node that waits for a root to connect (docs/distributed.md). mproc::init (and so
// the node constructor) runs it and never returns.
#pragma once

#include <optional>
#include <string>

#include "mproc/runtime/node.hpp"

namespace mproc::detail {

struct node_mode_args {
  std::string listen = "127.0.0.1:0";
  std::string authkey_file;  // empty: $MPROC_AUTHKEY
  std::string name = "Node";
  bool serve_forever = false;  // else: end once every root that connected is gone
  bool plaintext = false;  // also accept clients that do not speak TLS
  node::certificates certificates;  // all three set: these instead of the authkey
};

// Set when argv holds --mproc-node; exits with a usage message on malformed options.
std::optional<node_mode_args> parse_node_mode(int argc, char** argv);

// Serves until SIGTERM / SIGINT, or until the roots are gone; then exits the process.
[[noreturn]] void run_node_mode(const node_mode_args& args, node_options options);

} // namespace mproc::detail
