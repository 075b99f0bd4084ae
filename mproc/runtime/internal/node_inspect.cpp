// Part of the node: its snapshot for introspection (`mproc ps`), and the built-in actor
// through which a parent asks a child node for the child's own.
#include <atomic>
#include <cmath>
#include <fstream>
#include <future>
#include <sstream>

#include <caf/blocking_actor.hpp>

#include <unistd.h>

#include "mproc/runtime/actor_registry.hpp"
#include "mproc/runtime/internal/inspect_sources.hpp"
#include "mproc/runtime/internal/node_impl.hpp"
#include "mproc/runtime/message_types.hpp"

namespace mproc::detail {

namespace {

// What a parent spawns in a child to ask for its snapshot (one request: the time left, ms).
constexpr const char* inspect_actor = "mproc_inspect";

std::atomic<node_impl*> inspected_node{nullptr};

using clock = inspect_clock;

const char* phase_name(process_state::phase p) {
  switch (p) {
    case process_state::phase::created: return "created";
    case process_state::phase::starting: return "starting";
    case process_state::phase::running: return "running";
    case process_state::phase::ended: return "ended";
  }
  return "?";
}

const char* method_name(start_method m) {
  return m == start_method::exec ? "exec" : "forkserver";
}

// Seconds since `pid` started and its resident set in bytes, from /proc (nothing when the
// process is gone or not ours to read).
void add_proc_facts(value::map_t& m, pid_t pid) {
  auto dir = "/proc/" + std::to_string(pid);
  std::ifstream stat{dir + "/stat"};
  std::string line;
  if (!std::getline(stat, line))
    return;
  auto close = line.rfind(')');  // the command name may hold spaces and parentheses
  if (close == std::string::npos)
    return;
  std::istringstream fields{line.substr(close + 2)};
  std::string field;
  unsigned long long start_ticks = 0;
  for (int i = 3; i <= 22 && fields >> field; ++i)  // field 22: starttime, in clock ticks
    if (i == 22)
      start_ticks = std::stoull(field);
  double since_boot = 0;
  std::ifstream{"/proc/uptime"} >> since_boot;
  auto ticks = static_cast<double>(::sysconf(_SC_CLK_TCK));
  auto up = std::max(0.0, since_boot - static_cast<double>(start_ticks) / ticks);
  m.emplace_back("uptime", std::round(up * 100) / 100);  // /proc counts in ticks of 10 ms
  unsigned long long size = 0, resident = 0;
  if (std::ifstream{dir + "/statm"} >> size >> resident)
    m.emplace_back("rss", static_cast<std::uint64_t>(resident * ::sysconf(_SC_PAGESIZE)));
}

value link_facts(const link& l) {
  auto c = l.count();
  return value::map_t{{"frames_in", c.frames_in},   {"bytes_in", c.bytes_in},
                      {"writes_out", c.writes_out}, {"bytes_out", c.bytes_out},
                      {"backlog", c.backlog}};
}

value error_facts(const caf::actor_system& sys, const caf::error& e) {
  return value::map_t{{"error", sys.render(e)}};
}

// The blocking actor a parent spawns here: answers one request with this node's snapshot.
// A parent that gave up before its request came leaves it to end on its own.
void inspect_in_child(caf::blocking_actor* self) {
  self->receive(
    [](std::int64_t budget_ms) -> value {
      auto* node = inspected_node.load();
      if (!node)
        return nullptr;
      return node->inspect(clock::now() + std::chrono::milliseconds{budget_ms});
    },
    caf::after(std::chrono::seconds{10}) >> [] {});
}

[[maybe_unused]] const bool inspect_actor_registered = register_actor(
  make_actor_entry<&inspect_in_child>(inspect_actor));

} // namespace

void node_impl::track_for_inspection(bool on) {
  inspected_node.store(on ? this : nullptr);
}

value node_impl::inspect(clock::time_point deadline) {
  value::map_t me{{"pid", static_cast<std::int64_t>(::getpid())},
                  {"name", name_},
                  {"node", id_},
                  {"role", child_ ? "child" : "root"},
                  {"program", executable_}};
  add_proc_facts(me, ::getpid());
  std::vector<std::shared_ptr<process_state>> children;
  std::vector<std::shared_ptr<peer>> peers;
  value::array_t names;
  {
    std::lock_guard guard{mtx_};
    children = children_;
    peers.assign(peers_.begin(), peers_.end());
    for (const auto& [name, actor] : names_)
      names.emplace_back(name);
  }
  me.emplace_back("names", std::move(names));
  value::array_t kids;
  for (const auto& c : children)
    kids.emplace_back(inspect_child(*c, deadline));
  me.emplace_back("children", std::move(kids));
  value::array_t remotes;
  for (const auto& p : peers) {
    if (p->kind() == peer::role::parent)
      me.emplace_back("parent_link", link_facts(p->link()));
    if (p->kind() != peer::role::remote)
      continue;
    auto who = p->who();
    auto silent = std::chrono::duration<double>(std::chrono::steady_clock::now() - p->last_heard());
    remotes.emplace_back(value::map_t{{"name", who.name},
                                      {"pid", who.pid},
                                      {"node", who.node},
                                      {"address", p->link().remote_address()},
                                      {"last_heard", silent.count()},
                                      {"link", link_facts(p->link())}});
  }
  me.emplace_back("remotes", std::move(remotes));
  me.emplace_back("objects", inspect_reports());
  return me;
}

value node_impl::inspect_child(process_state& c, clock::time_point deadline) {
  value::map_t m;
  std::shared_ptr<peer> link;
  bool running = false;
  {
    std::lock_guard guard{c.mtx};
    m.emplace_back("name", c.name);
    m.emplace_back("pid", static_cast<std::int64_t>(c.pid));
    m.emplace_back("target", c.target);
    m.emplace_back("state", phase_name(c.state));
    m.emplace_back("method", method_name(c.method.value_or(method_)));
    m.emplace_back("daemon", c.daemon);
    m.emplace_back("exitcode", c.exitcode ? value{*c.exitcode} : value{});
    link = c.link;
    running = c.state == process_state::phase::running && c.pid > 0;
  }
  if (running)
    add_proc_facts(m, c.pid);
  if (link)
    m.emplace_back("link", link_facts(link->link()));
  if (running && link)
    m.emplace_back("node", ask_child(*link, deadline));
  return m;
}

// Spawns the inspect actor in the child and asks it, all within `deadline`; a child that
// does not answer in time is shown with the reason instead of its snapshot.
value node_impl::ask_child(peer& child, clock::time_point deadline) {
  auto spawned = std::make_shared<std::promise<caf::expected<caf::actor>>>();
  auto answer = spawned->get_future();
  child.spawn(inspect_actor, caf::message{}, false,
              [spawned](caf::expected<caf::actor> a) { spawned->set_value(std::move(a)); });
  if (answer.wait_until(deadline) != std::future_status::ready)
    return value::map_t{{"error", "no answer in time"}};
  auto actor = answer.get();
  if (!actor)
    return error_facts(*system_, actor.error());
  // The child gets a little less time than is left here, so that its answer can still come.
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now());
  auto budget = std::max<std::int64_t>(left.count() * 3 / 4, 1);
  auto reply = request(*actor, caf::make_message(budget), left);
  if (!reply) {
    caf::anon_send_exit(*actor, caf::exit_reason::user_shutdown);
    return error_facts(*system_, reply.error());
  }
  if (reply->size() != 1 || !reply->match_element<value>(0))
    return value::map_t{{"error", "the child answered with something else"}};
  return reply->get_as<value>(0);
}

} // namespace mproc::detail
