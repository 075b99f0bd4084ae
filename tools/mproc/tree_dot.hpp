// Roots' snapshots as a Graphviz graph (`mproc ps --dot`), and as a PNG drawn by Graphviz's
// `dot` (`mproc ps --png FILE`).
#pragma once

#include <iosfwd>
#include <string>
#include <vector>

#include <mproc/serialization/value.hpp>

namespace mproc::cli {

void write_dot(std::ostream& out, const std::vector<value>& roots);

// Runs `dot -Tpng -o file` on `dot_text`. Throws std::runtime_error when dot is missing or
// fails (the message says to install graphviz).
void render_png(const std::string& dot_text, const std::string& file);

} // namespace mproc::cli
