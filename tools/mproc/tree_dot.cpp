#include "tree_dot.hpp"

#include <cerrno>
#include <cstring>
#include <ostream>
#include <stdexcept>

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include "snapshot.hpp"
#include "tree_text.hpp"

extern char** environ;

namespace mproc::cli {

namespace {

std::string quoted(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '\n') {
      out += "\\n";  // a line break in the label
      continue;
    }
    if (c == '"' || c == '\\')
      out += '\\';
    out += c;
  }
  return out + "\"";
}

const char* fill_for(const value& c) {
  auto state = text(c, "state");
  if (state == "running")
    return "#d9ead3";  // green: running
  if (state == "ended")
    return integer(c, "exitcode") == 0 ? "#eeeeee" : "#f4cccc";  // grey, or red: failed
  return "#fff2cc";  // yellow: starting
}

struct drawer {
  std::ostream& out;
  int boxes = 0;

  // Not the pid: processes not started yet all have pid 0.
  std::string next_id() { return "n" + std::to_string(boxes++); }

  void node_box(const std::string& id, const std::string& label, const char* fill) {
    out << "  " << id << " [shape=box, style=\"rounded,filled\", fillcolor=\"" << fill
        << "\", label=" << quoted(label) << "];\n";
  }

  void objects(const value& node, const std::string& owner) {
    int i = 0;
    for (const auto& o : list(node, "objects")) {
      auto id = owner + "_o" + std::to_string(i++);
      auto label = text(o, "kind") + " " + object_summary(o, "\n");
      out << "  " << id << " [shape=note, fontsize=9, label=" << quoted(label) << "];\n"
          << "  " << owner << " -> " << id << " [style=dashed, arrowhead=none];\n";
    }
  }

  void children(const value& node, const std::string& owner) {
    for (const auto& c : list(node, "children")) {
      auto id = next_id();
      std::string label = text(c, "name") + "\npid " + std::to_string(integer(c, "pid")) + "  "
                          + text(c, "target") + "\n" + text(c, "state");
      if (!field(c, "exitcode").is_nil())
        label += " (" + exit_text(integer(c, "exitcode")) + ")";
      if (!field(c, "rss").is_nil())
        label += "  rss " + human_bytes(real(c, "rss"));
      node_box(id, label, fill_for(c));
      out << "  " << owner << " -> " << id << ";\n";
      const auto& sub = field(c, "node");
      if (sub.type() == value::kind::map && text(sub, "error").empty()) {
        objects(sub, id);
        children(sub, id);
      }
    }
  }

  void root(const value& r) {
    auto id = next_id();
    std::string label = text(r, "name") + "\npid " + std::to_string(integer(r, "pid"))
                        + "  root\nrss " + human_bytes(real(r, "rss"));
    node_box(id, label, "#cfe2f3");
    objects(r, id);
    children(r, id);
  }
};

} // namespace

void write_dot(std::ostream& out, const std::vector<value>& roots) {
  out << "digraph mproc {\n"
         "  rankdir=LR;\n"
         "  node [fontname=\"Helvetica\", fontsize=10];\n"
         "  edge [color=\"#666666\"];\n";
  drawer d{out};
  for (const auto& r : roots)
    d.root(r);
  out << "}\n";
}

void render_png(const std::string& dot_text, const std::string& file) {
  int in[2];
  if (::pipe2(in, O_CLOEXEC) != 0)
    throw std::runtime_error{std::string{"pipe: "} + std::strerror(errno)};
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, in[0], 0);
  const char* argv[] = {"dot", "-Tpng", "-o", file.c_str(), nullptr};
  pid_t pid = 0;
  int rc = ::posix_spawnp(&pid, "dot", &actions, nullptr, const_cast<char**>(argv), environ);
  posix_spawn_file_actions_destroy(&actions);
  ::close(in[0]);
  if (rc != 0) {
    ::close(in[1]);
    throw std::runtime_error{std::string{"cannot run Graphviz's dot ("} + std::strerror(rc)
                             + "): install graphviz (apt-get install graphviz)"};
  }
  std::string_view left{dot_text};
  while (!left.empty()) {
    auto n = ::write(in[1], left.data(), left.size());
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      break;  // dot ended early: its status says why
    left.remove_prefix(static_cast<std::size_t>(n));
  }
  ::close(in[1]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    throw std::runtime_error{"dot failed to draw " + file};
}

} // namespace mproc::cli
