#include "mproc/actors/pool_dispatch_state.hpp"

#include <chrono>

#include <caf/actor_system.hpp>
#include <caf/send.hpp>

#include "mproc/actors/pool_job.hpp"
#include "mproc/actors/pool_protocol.hpp"
#include "mproc/runtime/errors.hpp"
#include "mproc/runtime/log.hpp"
#include "mproc/runtime/message_types.hpp"

namespace mproc::detail {

namespace {

// A worker that dies before asking for work is replaced after a pause that doubles with
// each such death in a row (a broken initializer would otherwise fork without end).
constexpr auto respawn_pause = std::chrono::milliseconds{20};
constexpr auto respawn_pause_max = std::chrono::seconds{2};
// terminate() sends SIGTERM, and SIGKILL to workers still running this much later.
constexpr auto terminate_grace = std::chrono::seconds{1};

} // namespace

void start_worker(dispatcher* self, const state_ptr& st) {
  auto seq = st->next_seq++;
  auto& o = st->options;
  process p{this_node(), pool_worker_name(),
            {.name = o.name + "-" + std::to_string(seq), .daemon = true},
            caf::actor_cast<caf::actor>(self),
            o.initializer ? o.initializer->chunk : bytes{},
            static_cast<std::uint32_t>(o.maxtasksperchild), this_node().max_frame()};
  caf::actor me = caf::actor_cast<caf::actor>(self);
  p.on_exit([me, seq](int code) {
    caf::anon_send(me, pool_control{pool_control::exited, seq, code});
  });
  st->live.emplace(seq, p);
  p.start([me, seq](caf::error err) {
    if (err)
      caf::anon_send(me, pool_control{pool_control::started, seq, 0, std::move(err)});
  });
}

// After close() once the work is done, or after terminate(): the last worker to end
// releases join().
void check_over(const state_ptr& st) {
  if (!st->live.empty() || !(st->terminated || (st->closed && !work_left(*st))))
    return;
  st->status->finish();
}

void on_dispatcher_end(const state_ptr& st, const std::string& reason) {
  auto why = make_error(errc::closed, "the pool's dispatcher has ended (" + reason + ")");
  for (auto& job : st->status->take_handed_in(true))
    job->fail(why);
  fail_everything(st, why);
  // Its workers end too: one waiting for work would wait for ever on its pull (a promise
  // dropped answers nothing in CAF 0.17), one still running is asked to stop.
  for (auto& p : st->pulls)
    p.rp.deliver(item_batch{});  // quit
  st->pulls.clear();
  for (auto& [seq, p] : st->live)
    p.terminate();
  st->status->finish();
}

void respawn(dispatcher* self, const state_ptr& st) {
  if (!st->terminated && (!st->closed || work_left(*st)))
    start_worker(self, st);
}

void on_worker_exit(dispatcher* self, const state_ptr& st, std::size_t seq, int code) {
  auto p = st->live.find(seq);
  if (p == st->live.end())
    return;
  bool started = st->pulled.erase(caf::actor_cast<caf::actor_addr>(p->second.actor())) != 0;
  bool ran = p->second.pid() != 0;  // else pool_control::started said why
  st->live.erase(p);
  if (st->terminated) {
    check_over(st);
    return;
  }
  if (code != 0 && !started) {
    ++st->barren_deaths;
    ++st->deaths_before_work;
    if (ran)  // a failing initializer, a crash at start: its own output says more
      st->last_death = "a worker ended before asking for work: " + describe_exit(code);
  }
  // Workers that keep dying before finishing anything cannot be helped by more workers,
  // unless one that started lives on (running a long task): it makes progress, and the
  // others are replaced with pauses (as Python, which replaces them without).
  if (st->barren_deaths > 3 * std::max<std::size_t>(st->options.processes, 1)
      && st->pulled.empty()) {
    fail_everything(st, make_error(errc::task_failed,
                                   "pool workers keep dying before finishing a task (last: "
                                     + st->last_death + ")"));
    st->barren_deaths = 0;
  }
  if (st->deaths_before_work > 0) {
    auto pause = respawn_pause * (1u << std::min<std::size_t>(st->deaths_before_work - 1, 10));
    self->delayed_send(self, std::min<std::chrono::milliseconds>(pause, respawn_pause_max),
                       pool_control{pool_control::respawn});
  } else {
    respawn(self, st);
  }
  serve(st);
  check_over(st);
}

void on_start_failed(dispatcher* self, const state_ptr& st, std::size_t seq,
                     const caf::error& err) {
  auto p = st->live.find(seq);
  if (p == st->live.end())
    return;
  if (!st->terminated) {
    st->last_death = self->system().render(err);
    log::warn("a pool worker could not start: ", st->last_death);
  }
  if (p->second.pid() == 0)  // never ran; else it ends (is killed) and on_exit reports
    on_worker_exit(self, st, seq, 1);
}

void terminate_pool(dispatcher* self, const state_ptr& st) {
  st->terminated = true;
  fail_everything(st, make_error(errc::closed, "the pool was terminated"));
  serve(st);
  for (auto& [seq, p] : st->live)
    p.terminate();
  check_over(st);
  self->delayed_send(self, terminate_grace, pool_control{pool_control::kill});
}

} // namespace mproc::detail
