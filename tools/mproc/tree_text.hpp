// A root's snapshot as text, drawn as pstree draws a process tree: each process on a line
// with its state and figures, the queues, pools and supervisors its node holds beneath it.
#pragma once

#include <iosfwd>
#include <string>

#include <mproc/serialization/value.hpp>

namespace mproc::cli {

void write_tree(std::ostream& out, const value& root);

// What one object (a queue, a pool, a supervisor) says after its kind: its id or name, then
// its figures in groups separated by `sep`.
std::string object_summary(const value& object, const char* sep);

} // namespace mproc::cli
