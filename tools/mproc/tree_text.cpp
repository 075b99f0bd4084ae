#include "tree_text.hpp"

#include <map>
#include <ostream>
#include <sstream>

#include "snapshot.hpp"

namespace mproc::cli {

namespace {

// Supervised children by pid: their restart counts, from the supervisors of one node.
using restarts_by_pid = std::map<std::int64_t, std::int64_t>;

restarts_by_pid restarts_of(const value& node) {
  restarts_by_pid out;
  for (const auto& o : list(node, "objects"))
    if (text(o, "kind") == "supervisor")
      for (const auto& c : list(o, "children"))
        if (integer(c, "pid") != 0)
          out[integer(c, "pid")] = integer(c, "restarts");
  return out;
}

std::string figures(const value& m) {
  std::ostringstream s;
  if (!field(m, "uptime").is_nil())
    s << "  up " << human_seconds(real(m, "uptime"));
  if (!field(m, "rss").is_nil())
    s << "  rss " << human_bytes(real(m, "rss"));
  return s.str();
}

std::string link_figures(const value& link) {
  if (link.is_nil())
    return {};
  std::ostringstream s;
  s << "  link in " << integer(link, "frames_in") << " frames/"
    << human_bytes(real(link, "bytes_in")) << ", out " << integer(link, "writes_out")
    << " writes/" << human_bytes(real(link, "bytes_out"));
  if (integer(link, "backlog") > 0)
    s << ", backlog " << human_bytes(real(link, "backlog"));
  return s.str();
}

std::string child_line(const value& c, const restarts_by_pid& restarts) {
  std::ostringstream s;
  auto pid = integer(c, "pid");
  s << text(c, "name") << " (pid " << pid << ")  " << text(c, "target") << "  "
    << text(c, "state");
  if (!field(c, "exitcode").is_nil())
    s << " exitcode " << exit_text(integer(c, "exitcode"));
  s << "  " << text(c, "method");
  if (field(c, "daemon").type() == value::kind::boolean && field(c, "daemon").as<bool>())
    s << " daemon";
  if (auto r = restarts.find(pid); r != restarts.end())
    s << "  restarts " << r->second;
  s << figures(c) << link_figures(field(c, "link"));
  return s.str();
}

// Lines under a node: its objects, then its children (each with its own node below it).
void write_below(std::ostream& out, const value& node, const std::string& prefix) {
  const auto& children = list(node, "children");
  for (const auto& o : list(node, "objects"))
    out << prefix << (children.empty() ? "  " : "│ ") << "· " << text(o, "kind") << ' '
        << object_summary(o, "  ") << '\n';
  for (const auto& r : list(node, "remotes")) {
    auto encryption = text(r, "encryption");
    out << prefix << (children.empty() ? "  " : "│ ") << "↔ node " << text(r, "name")
        << " (pid " << integer(r, "pid") << ") at " << text(r, "address") << " ("
        << (encryption.empty() ? "in clear" : encryption) << "), heard "
        << human_seconds(real(r, "last_heard")) << " ago" << link_figures(field(r, "link"))
        << '\n';
  }
  auto restarts = restarts_of(node);
  for (std::size_t i = 0; i < children.size(); ++i) {
    bool last = i + 1 == children.size();
    const auto& c = children[i];
    out << prefix << (last ? "└── " : "├── ") << child_line(c, restarts) << '\n';
    auto deeper = prefix + (last ? "    " : "│   ");
    const auto& sub = field(c, "node");
    if (!text(sub, "error").empty())
      out << deeper << "(its node did not answer: " << text(sub, "error") << ")\n";
    else if (sub.type() == value::kind::map)
      write_below(out, sub, deeper);
  }
}

} // namespace

std::string object_summary(const value& o, const char* sep) {
  std::ostringstream s;
  auto kind = text(o, "kind");
  if (kind == "supervisor" || kind == "pool")
    s << "'" << text(o, "name") << "'";
  else
    s << integer(o, "id");
  if (!text(o, "error").empty()) {
    s << sep << "(no answer: " << text(o, "error") << ")";
  } else if (kind == "queue") {
    s << sep << "size " << integer(o, "size");
    if (integer(o, "maxsize") > 0)
      s << '/' << integer(o, "maxsize");
    s << ", held " << integer(o, "held") << sep << integer(o, "producers") << " producers, "
      << integer(o, "consumers") << " consumers" << sep << "waiting gets "
      << integer(o, "waiting_gets") << ", puts " << integer(o, "waiting_puts") << sep
      << "accepted " << integer(o, "accepted") << ", taken " << integer(o, "taken");
    if (integer(o, "redelivered") > 0)
      s << ", redelivered " << integer(o, "redelivered");
  } else if (kind == "pool") {
    s << sep << list(o, "workers").size() << " workers" << sep << "chunks "
      << integer(o, "chunks_in_flight") << " in flight, " << integer(o, "chunks_ready")
      << " ready, " << integer(o, "chunks_done") << " done";
  } else if (kind == "supervisor") {
    for (const auto& c : list(o, "children")) {
      s << sep << text(c, "id") << " " << text(c, "state");
      if (integer(c, "restarts") > 0)
        s << ", " << integer(c, "restarts") << " restarts";
    }
  }
  if (field(o, "closed").type() == value::kind::boolean && field(o, "closed").as<bool>())
    s << sep << "closed";
  return s.str();
}

void write_tree(std::ostream& out, const value& root) {
  out << text(root, "name") << " (pid " << integer(root, "pid") << ")  " << text(root, "role")
      << figures(root) << '\n';
  write_below(out, root, "");
}

} // namespace mproc::cli
