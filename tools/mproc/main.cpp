// mproc: look at running mproc programs from outside (docs/introspection.md).
//   mproc ps [PID] [--json | --dot | --png FILE]    the tree of a root (with no PID: the roots)
//   mproc top [PID] [--interval S] [--count N]       the tree again and again, with rates
#include <csignal>
#include <iostream>
#include <sstream>

#include <unistd.h>

#include <CLI/CLI.hpp>

#include <mproc/runtime/errors.hpp>
#include <mproc/runtime/inspect.hpp>

#include "json.hpp"
#include "snapshot.hpp"
#include "top.hpp"
#include "tree_dot.hpp"
#include "tree_text.hpp"

namespace {

using namespace mproc;

struct ps_options {
  pid_t pid = 0;
  bool json = false;
  bool dot = false;
  std::string png;
  double timeout = 10;
};

// The roots asked for: the one named, or every root of this user.
std::vector<value> snapshots(const ps_options& o) {
  auto timeout = std::chrono::milliseconds{static_cast<std::int64_t>(o.timeout * 1000) + 1};
  std::vector<value> out;
  if (o.pid != 0) {
    out.push_back(inspect_node(o.pid, timeout));
    return out;
  }
  for (auto pid : inspect_roots()) {
    try {
      out.push_back(inspect_node(pid, timeout));
    } catch (const mproc::error& e) {
      std::cerr << "mproc ps: " << e.what() << '\n';  // it ended meanwhile: the others still
    }
  }
  return out;
}

void list_roots(const std::vector<value>& roots) {
  if (roots.empty()) {
    std::cout << "no mproc roots of this user are running (sockets in "
              << inspect_directory() << ")\n";
    return;
  }
  for (const auto& r : roots)
    std::cout << cli::integer(r, "pid") << "  " << cli::text(r, "name") << "  "
              << cli::list(r, "children").size() << " children  up "
              << cli::human_seconds(cli::real(r, "uptime")) << "  rss "
              << cli::human_bytes(cli::real(r, "rss")) << '\n';
}

int run_ps(const ps_options& o) {
  auto roots = snapshots(o);
  if (o.json) {
    if (o.pid != 0)
      cli::write_json(std::cout, roots.front());
    else
      cli::write_json(std::cout, value{value::array_t{roots.begin(), roots.end()}});
    std::cout << '\n';
  } else if (o.dot || !o.png.empty()) {
    std::ostringstream dot;
    cli::write_dot(dot, roots);
    if (o.dot)
      std::cout << dot.str();
    if (!o.png.empty())
      cli::render_png(dot.str(), o.png);
  } else if (o.pid != 0) {
    cli::write_tree(std::cout, roots.front());
  } else {
    list_roots(roots);
  }
  return 0;
}

// The root to watch: the one named, else the only one running.
pid_t only_root(pid_t named) {
  if (named != 0)
    return named;
  auto roots = inspect_roots();
  if (roots.size() == 1)
    return roots.front();
  throw std::runtime_error{roots.empty() ? "no mproc roots of this user are running"
                                         : "several mproc roots are running: name one (mproc ps lists them)"};
}

} // namespace

int main(int argc, char** argv) {
  std::signal(SIGPIPE, SIG_IGN);  // a closed pipe (| head, dot ending early) is an error return
  CLI::App app{"Look at running mproc programs: their processes, queues, pools and links."};
  app.require_subcommand(1);

  ps_options ps;
  auto* ps_cmd = app.add_subcommand("ps", "Print a root's tree of processes (no PID: list the roots)");
  ps_cmd->add_option("pid", ps.pid, "Process id of a root node");
  auto* json = ps_cmd->add_flag("--json", ps.json, "Print the snapshot as JSON");
  auto* dot = ps_cmd->add_flag("--dot", ps.dot, "Print the tree as a Graphviz graph");
  auto* png = ps_cmd->add_option("--png", ps.png, "Draw the tree into this PNG file (needs graphviz)");
  ps_cmd->add_option("--timeout", ps.timeout, "Seconds to wait for an answer")
    ->check(CLI::Range(0.001, 3600.0));
  json->excludes(dot);
  json->excludes(png);

  pid_t top_pid = 0;
  cli::top_options top;
  auto* top_cmd = app.add_subcommand("top", "Refresh a root's tree with rates until interrupted");
  top_cmd->add_option("pid", top_pid, "Process id of a root node (default: the only one)");
  top_cmd->add_option("--interval", top.interval, "Seconds between refreshes")
    ->check(CLI::Range(0.05, 3600.0));
  top_cmd->add_option("--count", top.count, "Refresh this many times, then exit (0: forever)")
    ->check(CLI::NonNegativeNumber);

  CLI11_PARSE(app, argc, argv);
  try {
    if (*ps_cmd)
      return run_ps(ps);
    top.clear = ::isatty(STDOUT_FILENO) != 0;
    return cli::run_top(only_root(top_pid), top, std::cout);
  } catch (const std::exception& e) {
    std::cerr << "mproc " << (*ps_cmd ? "ps" : "top") << ": " << e.what() << '\n';
    return 1;
  }
}
