#include "top.hpp"

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <iostream>
#include <map>
#include <thread>
#include <vector>

#include <mproc/runtime/errors.hpp>
#include <mproc/runtime/inspect.hpp>

#include "snapshot.hpp"

namespace mproc::cli {

namespace {

std::atomic<bool> interrupted{false};

// One process of the tree, flattened, with the counters rates are made of.
struct row {
  std::int64_t pid = 0;
  std::string name;  // indented by depth
  std::string state;
  double rss = 0;
  double frames = 0, bytes = 0;  // both ways on its link to its parent
};

struct queue_row {
  std::string key;  // owner pid and queue id
  std::string label;
  std::int64_t size = 0, held = 0;
  double accepted = 0, taken = 0;
};

struct screen {
  std::vector<row> rows;
  std::vector<queue_row> queues;
};

void flatten(const value& node, int depth, screen& s) {
  for (const auto& o : list(node, "objects"))
    if (text(o, "kind") == "queue")
      s.queues.push_back({std::to_string(integer(node, "pid")) + "/" + std::to_string(integer(o, "id")),
                          "queue " + std::to_string(integer(o, "id")) + " of pid "
                            + std::to_string(integer(node, "pid")),
                          integer(o, "size"), integer(o, "held"), real(o, "accepted"),
                          real(o, "taken")});
  for (const auto& c : list(node, "children")) {
    const auto& l = field(c, "link");
    s.rows.push_back({integer(c, "pid"), std::string(static_cast<std::size_t>(depth) * 2, ' ') + text(c, "name"),
                      text(c, "state"), real(c, "rss"),
                      real(l, "frames_in") + real(l, "writes_out"),
                      real(l, "bytes_in") + real(l, "bytes_out")});
    const auto& sub = field(c, "node");
    if (sub.type() == value::kind::map)
      flatten(sub, depth + 1, s);
  }
}

template <class T, class Key, class Get>
double rate(const std::vector<T>& before, const T& now, Key key, Get get, double seconds) {
  for (const auto& b : before)
    if (key(b) == key(now))
      return seconds > 0 ? (get(now) - get(b)) / seconds : 0;
  return 0;
}

void print(std::ostream& out, const value& root, const screen& now, const screen& before,
           double seconds) {
  char line[256];
  out << "mproc top: " << text(root, "name") << " (pid " << integer(root, "pid") << ")  up "
      << human_seconds(real(root, "uptime")) << "  rss " << human_bytes(real(root, "rss"))
      << "  " << now.rows.size() << " processes\n";
  std::snprintf(line, sizeof line, "%-8s %-28s %-8s %10s %10s %12s\n", "PID", "NAME", "STATE",
                "RSS", "FRAMES/S", "BYTES/S");
  out << line;
  for (const auto& r : now.rows) {
    auto pid_of = [](const row& x) { return x.pid; };
    auto msgs = rate(before.rows, r, pid_of, [](const row& x) { return x.frames; }, seconds);
    auto bytes = rate(before.rows, r, pid_of, [](const row& x) { return x.bytes; }, seconds);
    // The first screen has nothing to compare with: its rates are "-".
    auto msgs_text = seconds > 0 ? std::to_string(static_cast<long long>(msgs)) : "-";
    auto bytes_text = seconds > 0 ? human_bytes(bytes) + "/s" : "-";
    std::snprintf(line, sizeof line, "%-8lld %-28s %-8s %10s %10s %12s\n",
                  static_cast<long long>(r.pid), r.name.c_str(), r.state.c_str(),
                  human_bytes(r.rss).c_str(), msgs_text.c_str(), bytes_text.c_str());
    out << line;
  }
  for (const auto& q : now.queues) {
    auto key_of = [](const queue_row& x) { return x.key; };
    auto puts = rate(before.queues, q, key_of, [](const queue_row& x) { return x.accepted; }, seconds);
    auto gets = rate(before.queues, q, key_of, [](const queue_row& x) { return x.taken; }, seconds);
    auto per_second = [&](double x) {
      return seconds > 0 ? std::to_string(static_cast<long long>(x)) + "/s" : std::string{"-"};
    };
    std::snprintf(line, sizeof line, "%-28s size %-8lld held %-6lld put %12s  get %12s\n",
                  q.label.c_str(), static_cast<long long>(q.size), static_cast<long long>(q.held),
                  per_second(puts).c_str(), per_second(gets).c_str());
    out << line;
  }
  out.flush();
}

} // namespace

int run_top(pid_t root, const top_options& options, std::ostream& out) {
  interrupted = false;
  std::signal(SIGINT, [](int) { interrupted = true; });
  screen before;
  auto then = std::chrono::steady_clock::now();  // when `before` was taken: rates span it
  auto last_try = then;
  for (int shown = 0; !interrupted && (options.count == 0 || shown < options.count); ++shown) {
    if (shown > 0) {
      // Sleeps in short steps, so that Ctrl-C ends it at once.
      auto until = last_try + std::chrono::duration<double>(options.interval);
      while (!interrupted && std::chrono::steady_clock::now() < until)
        std::this_thread::sleep_for(std::chrono::milliseconds{20});
      if (interrupted)
        break;
    }
    last_try = std::chrono::steady_clock::now();
    value snapshot;
    try {
      snapshot = inspect_node(root, std::chrono::seconds{5});
    } catch (const mproc::error& e) {
      // The root answers one client at a time: a slow answer (another `mproc ps` first)
      // skips this refresh, which still counts; a root that is gone, or none at the first
      // look, ends it.
      std::cerr << "mproc top: " << e.what() << '\n';
      if (e.code() != errc::timeout || shown == 0)
        return 1;
      continue;
    }
    auto now = std::chrono::steady_clock::now();
    screen s;
    flatten(snapshot, 0, s);
    if (options.clear)
      out << "\033[H\033[2J";
    else if (shown > 0)
      out << '\n';
    print(out, snapshot, s, before, shown == 0 ? 0 : std::chrono::duration<double>(now - then).count());
    before = std::move(s);
    then = now;
  }
  return 0;
}

} // namespace mproc::cli
