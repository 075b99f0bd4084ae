// `mproc top`: a root's tree again and again, with rates between two looks (messages and
// bytes per second on each process's link, items per second through each queue).
#pragma once

#include <iosfwd>

#include <sys/types.h>

namespace mproc::cli {

struct top_options {
  double interval = 1.0;  // seconds between looks
  int count = 0;          // screens to print; 0: until interrupted (or the root ends)
  bool clear = true;      // clear the terminal between screens (off when not a terminal)
};

// Returns the exit code: 0 after `count` screens or an interrupt, 1 when the root stopped
// answering.
int run_top(pid_t root, const top_options& options, std::ostream& out);

} // namespace mproc::cli
