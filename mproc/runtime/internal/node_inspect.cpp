// Part of the node: its snapshot for introspection (`mproc ps`), and the built-in actor
// through which a parent asks a child node for the child's own.
#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <cmath>
#include <fstream>
#include <future>

#include <caf/blocking_actor.hpp>
#include <caf/event_based_actor.hpp>

#include <unistd.h>

#include "mproc/runtime/actor_registry.hpp"
#include "mproc/runtime/internal/inspect_sources.hpp"
#include "mproc/runtime/internal/node_impl.hpp"
#include "mproc/runtime/message_types.hpp"
#include "mproc/runtime/process_key.hpp"

namespace mproc::detail {

namespace {

// What a parent spawns in a child to ask for its snapshot: it gathers the snapshot within its
// argument's milliseconds, then answers one request with it.
constexpr const char* inspect_actor = "mproc_inspect";
constexpr std::int64_t max_budget_ms = 60'000;

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
  std::uint64_t start_ticks = 0;
  if (!process_start_ticks(pid, start_ticks))
    return;
  double since_boot = 0;
  std::ifstream{"/proc/uptime"} >> since_boot;
  auto ticks = static_cast<double>(::sysconf(_SC_CLK_TCK));
  auto up = std::max(0.0, since_boot - static_cast<double>(start_ticks) / ticks);
  m.emplace_back("uptime", std::round(up * 100) / 100);  // /proc counts in ticks of 10 ms
  unsigned long long size = 0, resident = 0;
  if (std::ifstream{"/proc/" + std::to_string(pid) + "/statm"} >> size >> resident)
    m.emplace_back("rss", static_cast<std::uint64_t>(resident * ::sysconf(_SC_PAGESIZE)));
}

value link_facts(const link& l) {
  auto c = l.count();
  return value::map_t{{"frames_in", c.frames_in},   {"bytes_in", c.bytes_in},
                      {"writes_out", c.writes_out}, {"bytes_out", c.bytes_out},
                      {"backlog", c.backlog}, {"shared_memory", l.on_ring()}};
}

value error_facts(const caf::actor_system& sys, const caf::error& e) {
  return value::map_t{{"error", sys.render(e)}};
}

// The blocking actor a parent spawns here. A parent that gave up before its request came
// leaves it to end on its own.
void inspect_in_child(caf::blocking_actor* self, std::int64_t budget_ms) {
  auto* node = inspected_node.load();
  auto budget = std::chrono::milliseconds{std::clamp<std::int64_t>(budget_ms, 1, max_budget_ms)};
  value snapshot = node ? node->inspect(clock::now() + budget) : value{};
  self->receive([&](std::int64_t) { return snapshot; },
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
  std::vector<std::shared_ptr<peer>> peers;
  value::array_t names;
  {
    std::lock_guard guard{mtx_};
    peers.assign(peers_.begin(), peers_.end());
    for (const auto& [name, actor] : names_)
      names.emplace_back(name);
  }
  me.emplace_back("names", std::move(names));
  // This node's own objects are asked meanwhile: a child that does not answer (stopped,
  // busy) must not leave them no time.
  auto objects = std::async(std::launch::async, [this, deadline] {
    return inspect_reports(deadline);
  });
  me.emplace_back("children", inspect_children(deadline));
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
                                      {"encryption", p->link().encryption()},
                                      {"last_heard", silent.count()},
                                      {"link", link_facts(p->link())}});
  }
  me.emplace_back("remotes", std::move(remotes));
  me.emplace_back("objects", objects.get());
  return me;
}

namespace {

// One child's snapshot being asked for, side by side with its siblings: the inspect actor is
// spawned in it at once (it starts gathering then), and as soon as it runs a local actor asks
// it for what it gathered. answer() only waits for the result.
class child_question {
public:
  // `pending` is the child's mark of a question under way: cleared once the child answers
  // the spawn, so that a child that does not answer gets no second one meanwhile.
  child_question(caf::actor_system& sys, peer& child, std::shared_ptr<std::atomic<bool>> pending,
                 clock::time_point deadline)
    : s_{std::make_shared<shared>()} {
    // The child gets a little less time than is left here, so that its answer can still come.
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now());
    auto budget = std::max<std::int64_t>(left.count() * 3 / 4, 1);
    child.spawn(inspect_actor, caf::make_message(budget), false,
                [s = s_, &sys, deadline, pending](caf::expected<caf::actor> a) {
                  pending->store(false);
                  if (!a)
                    return s->settle(error_facts(sys, a.error()));
                  if (s->given_up()) {  // answered too late: nobody will ask it
                    caf::anon_send_exit(*a, caf::exit_reason::user_shutdown);
                    return;
                  }
                  ask(sys, s, std::move(*a), deadline);
                });
  }
  ~child_question() { s_->give_up(); }
  child_question(const child_question&) = delete;
  child_question& operator=(const child_question&) = delete;

  value answer(clock::time_point deadline) {
    std::unique_lock guard{s_->mtx};
    if (!s_->changed.wait_until(guard, deadline, [&] { return s_->result.has_value(); }))
      return value::map_t{{"error", "no answer in time"}};
    return *s_->result;
  }

private:
  struct shared {
    std::mutex mtx;
    std::condition_variable changed;
    std::optional<value> result;
    bool abandoned = false;

    void settle(value v) {
      std::lock_guard guard{mtx};
      result = std::move(v);
      changed.notify_all();
    }
    bool given_up() {
      std::lock_guard guard{mtx};
      return abandoned;
    }
    void give_up() {
      std::lock_guard guard{mtx};
      abandoned = true;
    }
  };

  static void ask(caf::actor_system& sys, std::shared_ptr<shared> s, caf::actor child,
                  clock::time_point deadline) {
    auto left = std::max(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now()),
                         std::chrono::milliseconds{1});
    sys.spawn([s, child, left, &sys](caf::event_based_actor* self) {
      self->request(child, left, std::int64_t{0})
        .then([s](value& v) { s->settle(std::move(v)); },
              [s, child, &sys](caf::error& e) {
                caf::anon_send_exit(child, caf::exit_reason::user_shutdown);
                s->settle(error_facts(sys, e));
              });
    });
  }

  std::shared_ptr<shared> s_;
};

} // namespace

value::array_t node_impl::inspect_children(clock::time_point deadline) {
  std::vector<std::shared_ptr<process_state>> children;
  {
    std::lock_guard guard{mtx_};
    children = children_;
  }
  std::vector<value::map_t> facts;
  std::vector<std::unique_ptr<child_question>> questions;
  for (const auto& c : children) {
    value::map_t m;
    std::shared_ptr<peer> link;
    bool running = false;
    {
      std::lock_guard guard{c->mtx};
      m.emplace_back("name", c->name);
      m.emplace_back("pid", static_cast<std::int64_t>(c->pid));
      m.emplace_back("target", c->target);
      // Reaped (an exit code) a moment before its link is settled and its state follows.
      auto phase = c->exitcode ? process_state::phase::ended : c->state;
      m.emplace_back("state", phase_name(phase));
      m.emplace_back("method", method_name(c->started_by.value_or(c->method.value_or(method_))));
      m.emplace_back("daemon", c->daemon);
      m.emplace_back("exitcode", c->exitcode ? value{*c->exitcode} : value{});
      link = c->link;
      running = phase == process_state::phase::running && c->pid > 0;
    }
    if (running)
      add_proc_facts(m, c->pid);
    if (link)
      m.emplace_back("link", link_facts(link->link()));
    bool ask = running && link && !c->inspect_pending->exchange(true);
    if (running && link && !ask)  // a stopped child would pile up questions, all run at once
      m.emplace_back("node", value::map_t{{"error", "not asked: an earlier question is unanswered"}});
    questions.push_back(ask ? std::make_unique<child_question>(*system_, *link,
                                                               c->inspect_pending, deadline)
                            : nullptr);
    facts.push_back(std::move(m));
  }
  value::array_t out;
  for (std::size_t i = 0; i < facts.size(); ++i) {
    if (questions[i])
      facts[i].emplace_back("node", questions[i]->answer(deadline));
    out.emplace_back(std::move(facts[i]));
  }
  return out;
}

} // namespace mproc::detail
