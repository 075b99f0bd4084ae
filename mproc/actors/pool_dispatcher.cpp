#include "mproc/actors/pool_dispatch_state.hpp"

#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>

#include "mproc/actors/pool_job.hpp"
#include "mproc/actors/pool_protocol.hpp"
#include "mproc/actors/queue_batch.hpp"
#include "mproc/runtime/errors.hpp"
#include "mproc/runtime/message_types.hpp"
#include "mproc/serialization/protocol.hpp"

namespace mproc::detail {

namespace {

// The batch of `n` chunks just moved to the end of w.in_flight (ready_chunks::take: one task).
void note_handed(worker_slot& w, std::size_t n) {
  w.handed_items = 0;
  for (auto c = w.in_flight.end() - static_cast<std::ptrdiff_t>(n); c != w.in_flight.end(); ++c)
    w.handed_items += c->items;
  w.handed_task = w.in_flight.back().job->task;
}

} // namespace

bool work_left(const dispatch_state& st) {
  if (!st.feeding.empty() || !st.ready.empty())
    return true;
  for (const auto& [who, w] : st.workers)
    if (!w.in_flight.empty())
      return true;
  return false;
}

void fail_everything(const state_ptr& st, const caf::error& why) {
  for (auto& job : st->feeding)
    job->fail(why);
  for (auto& [who, w] : st->workers)
    for (auto& c : w.in_flight)
      c.job->fail(why);
  st->feeding.clear();
  st->ready.fail_all(why);
  for (auto& [who, w] : st->workers)
    w.in_flight.clear();
}

void serve(const state_ptr& st) {
  st->ready.fill(st->feeding, st->options.processes);
  while (!st->pulls.empty()) {
    auto& p = st->pulls.front();
    auto slot = st->workers.find(p.who);
    if (st->terminated || slot == st->workers.end()) {
      p.rp.deliver(item_batch{});  // quit
    } else if (!st->ready.empty()) {
      auto& w = slot->second;
      auto batch = st->ready.take(w.in_flight, st->options.processes, p.allowance, w.max_frame,
                                  st->pace);
      st->ready.fill(st->feeding, st->options.processes);
      if (batch.empty())
        continue;  // what was ready could never reach this worker, and failed: look again
      note_handed(w, batch.size());
      p.rp.deliver(std::move(batch));
    } else if (st->closed && !work_left(*st)) {
      p.rp.deliver(item_batch{});  // quit
    } else {
      break;  // nothing to give yet: the first waiting worker gets the next chunk
    }
    st->pulls.pop_front();
  }
}

namespace {

// The results of the chunks worker `w` held, in the order it got them; the caller checks
// them. Each run of chunks of one job is settled at once. A pull's results that are all one
// job's (the common case) go to it whole; otherwise each job gets a copy of its own run,
// so a job that keeps its results (map_async) keeps no other job's.
void settle_results(const state_ptr& st, worker_slot& w, item_batch& results) {
  auto n = std::min(results.size(), w.in_flight.size());
  if (n == 0)
    return;
  auto whole = std::make_shared<const item_batch>(std::move(results));
  for (std::size_t from = 0, to = 0; from < n; from = to) {
    auto job = w.in_flight.front().job;
    std::vector<pool_job::ran_chunk> run;
    for (; to < n && w.in_flight.front().job == job; ++to) {
      auto c = std::move(w.in_flight.front());
      w.in_flight.pop_front();
      run.push_back({c.index, c.items, static_cast<std::uint32_t>(to - from)});
      st->barren_deaths = 0;
      ++st->chunks_done;
      st->items_done += c.items;
    }
    std::shared_ptr<const item_batch> batch = whole;
    if (from > 0 || to < n) {
      auto own = std::make_shared<item_batch>();
      own->append(*whole, from, to);
      batch = std::move(own);
    }
    job->settle(std::move(batch), std::move(run));
  }
}

// The time the worker spent on its batch (its own measure: the round trip would make a
// batch of short tasks look slow, and keep it small), as its task's pace.
void learn_pace(dispatch_state& st, worker_slot& w, std::uint64_t busy_ns) {
  if (w.handed_items > 0)
    st.pace.measured(w.handed_task, w.handed_items, std::chrono::nanoseconds{busy_ns});
  w.handed_items = 0;
}

void on_pull(dispatcher* self, const state_ptr& st, item_batch& results,
             std::uint32_t allowance, std::uint32_t max_frame, std::uint64_t busy_ns) {
  auto who = caf::actor_cast<caf::actor_addr>(self->current_sender());
  // No worker: nobody to watch (what it took would never come back), or a frame limit no
  // node has (every chunk would fail as too large for it).
  if (!who || max_frame < wire::min_max_frame)
    return;
  auto [slot, fresh] = st->workers.try_emplace(who);
  slot->second.max_frame = max_frame;
  if (fresh) {
    self->monitor(who);
    st->pulled.insert(who);
    st->deaths_before_work = 0;
  }
  learn_pace(*st, slot->second, busy_ns);
  settle_results(st, slot->second, results);
  auto rp = self->make_response_promise();
  if (allowance == 0) {  // maxtasksperchild reached: it ends, a new one takes its place
    rp.deliver(item_batch{});  // quit
    return;
  }
  st->pulls.push_back({rp, who, allowance});
  serve(st);
}

void on_worker_down(dispatcher* self, const state_ptr& st, const caf::down_msg& down) {
  auto slot = st->workers.find(down.source);
  if (slot == st->workers.end())
    return;
  auto why = down.reason ? self->system().render(down.reason) : std::string{"ended"};
  st->last_death = why;
  auto& retry = st->options.max_retries;
  // A worker killed from outside is no chunk's fault: only a chunk it held alone is charged
  // with its death (so a chunk that kills its worker fails after max_retries, and random
  // deaths do not fail innocent chunks that shared a batch with others).
  bool alone = slot->second.in_flight.size() == 1;
  // Back to the front, oldest first: they were handed out before everything still ready.
  for (auto it = slot->second.in_flight.rbegin(); it != slot->second.in_flight.rend(); ++it) {
    auto c = std::move(*it);
    c.suspect = true;
    if (alone && ++c.attempts > retry) {
      c.job->settle_failed(c.index, c.items, "its worker died (" + why + ") "
                                                 + std::to_string(c.attempts)
                                                 + " times running it");
      continue;
    }
    st->ready.push_front(std::move(c));
  }
  st->workers.erase(slot);
  std::erase_if(st->pulls, [&](const pull_request& p) { return p.who == down.source; });
  serve(st);
}

void take_handed_in(const state_ptr& st) {
  for (auto& job : st->status->take_handed_in()) {
    if (st->closed || st->terminated)
      job->fail(make_error(errc::closed, "the pool is closed"));
    else
      st->feeding.push_back(std::move(job));
  }
  serve(st);
}

void on_control(dispatcher* self, const state_ptr& st, pool_control& c) {
  switch (c.what) {
    case pool_control::submit:
      return take_handed_in(st);
    case pool_control::close:
      st->closed = true;
      serve(st);
      return check_over(st);
    case pool_control::terminate:
      return terminate_pool(self, st);
    case pool_control::kill:  // workers that ignore SIGTERM
      for (auto& [seq, p] : st->live)
        p.kill();
      return;
    case pool_control::respawn:
      respawn(self, st);
      serve(st);
      return check_over(st);
    case pool_control::started:
      return on_start_failed(self, st, c.seq, c.error);
    case pool_control::exited:
      return on_worker_exit(self, st, c.seq, c.code);
  }
}

value inspect_pool(const dispatch_state& st) {
  std::size_t in_flight = 0;
  for (const auto& [who, w] : st.workers)
    in_flight += w.in_flight.size();
  value::array_t pids;
  for (const auto& [seq, p] : st.live)
    pids.emplace_back(static_cast<std::int64_t>(p.pid()));
  return value::map_t{{"name", st.options.name},
                      {"processes", st.options.processes},
                      {"workers", std::move(pids)},
                      {"started", st.next_seq - 1},
                      {"chunks_in_flight", in_flight},
                      {"chunks_ready", st.ready.size()},
                      {"jobs_feeding", st.feeding.size()},
                      {"idle_pulls", st.pulls.size()},
                      {"chunks_done", st.chunks_done},
                      {"items_done", st.items_done},
                      {"closed", st.closed || st.terminated}};
}

inspect_source make_source(dispatcher* self) {
  return inspect_source::of_actor("pool", caf::actor_cast<caf::actor_addr>(self),
                                  caf::make_message(pool_inspect_atom::value));
}

} // namespace

caf::behavior pool_dispatcher(dispatcher* self, pool_options options,
                              std::shared_ptr<pool_status> status) {
  auto st = std::make_shared<dispatch_state>();
  st->options = std::move(options);
  st->status = std::move(status);
  st->source = make_source(self);
  self->set_down_handler([=](caf::down_msg& down) { on_worker_down(self, st, down); });
  // However it ends (terminate() ends it once the workers have; an exception in a handler
  // or a kill at any time), no call waits for it: its jobs fail, join() returns.
  self->attach_functor([st, sys = &self->system()](const caf::error& reason) {
    on_dispatcher_end(st, reason ? sys->render(reason) : "normally");
  });
  for (std::size_t i = 0; i < st->options.processes; ++i)
    start_worker(self, st);
  return {
    [=](pool_pull_atom, item_batch& results, std::uint32_t allowance, std::uint32_t max_frame,
        std::uint64_t busy_ns) { on_pull(self, st, results, allowance, max_frame, busy_ns); },
    [=](pool_results_atom, item_batch& results) {
      auto who = caf::actor_cast<caf::actor_addr>(self->current_sender());
      if (auto slot = st->workers.find(who); slot != st->workers.end())
        settle_results(st, slot->second, results);
    },
    [=](pool_control& c) { on_control(self, st, c); },
    [=](pool_inspect_atom) { return inspect_pool(*st); },
  };
}

} // namespace mproc::detail
