// The pool dispatcher's state, shared by its two halves: the chunks it hands out and takes
// back (pool_dispatcher.cpp) and the worker processes it starts, replaces and ends
// (pool_dispatcher_workers.cpp). Private to the dispatcher.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <unordered_map>

#include <caf/actor_addr.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/response_promise.hpp>

#include "mproc/actors/addr_hash.hpp"
#include "mproc/actors/pool_dispatcher.hpp"
#include "mproc/actors/pool_pace.hpp"
#include "mproc/actors/pool_ready.hpp"
#include "mproc/runtime/inspect.hpp"
#include "mproc/runtime/node.hpp"
#include "mproc/runtime/process.hpp"

namespace mproc::detail {

struct worker_slot {
  std::deque<chunk_task> in_flight;  // in the order handed out
  std::uint32_t max_frame = 0;       // the largest message it takes, from its pulls
  // The task of the batch it holds (one task a batch) and its items: its next pull's time
  // spent on them is that task's pace.
  std::string handed_task;
  std::size_t handed_items = 0;
};

struct pull_request {
  caf::response_promise rp;
  caf::actor_addr who;
  std::uint32_t allowance;
};

struct dispatch_state {
  pool_options options;
  std::shared_ptr<pool_status> status;
  std::deque<std::shared_ptr<pool_job>> feeding;  // jobs with chunks left to encode
  ready_chunks ready{this_node().max_frame()};
  pool_pace pace;
  std::unordered_map<caf::actor_addr, worker_slot, addr_hash> workers;
  std::deque<pull_request> pulls;
  bool closed = false;
  bool terminated = false;
  std::size_t next_seq = 1;
  std::map<std::size_t, process> live;  // worker processes by number, until they end
  // Workers that asked for work (they started), by address: a pull may come before the
  // spawn's answer tells which process it is (p.actor()), never after its exit.
  std::set<caf::actor_addr> pulled;
  // Workers that died before they asked for work (a failing initializer, a crash at
  // start), in a row: no chunk settled since. One killed after it started, idle or busy,
  // does not count: an idle one is no sign of trouble, and a busy one's chunks are charged.
  std::size_t barren_deaths = 0;
  std::size_t deaths_before_work = 0;  // in a row, for the respawn pause; a pull resets it
  std::string last_death;
  std::uint64_t chunks_done = 0;
  std::uint64_t items_done = 0;
  inspect_source source;  // what `mproc ps` shows of this pool, while it lives
};

using dispatcher = caf::event_based_actor;
using state_ptr = std::shared_ptr<dispatch_state>;

// Hands ready chunks to the waiting pulls, oldest first (pool_dispatcher.cpp).
void serve(const state_ptr& st);
// Whether any chunk is still to be run or to come back.
bool work_left(const dispatch_state& st);
// Every job it holds fails with `why`.
void fail_everything(const state_ptr& st, const caf::error& why);

// The worker processes (pool_dispatcher_workers.cpp).
void start_worker(dispatcher* self, const state_ptr& st);
// Starts a worker in place of one that ended, unless the pool is over.
void respawn(dispatcher* self, const state_ptr& st);
// pool_control::exited and ::started (a start that failed).
void on_worker_exit(dispatcher* self, const state_ptr& st, std::size_t seq, int code);
void on_start_failed(dispatcher* self, const state_ptr& st, std::size_t seq,
                     const caf::error& err);
// Releases join() once the pool is over and its last worker has ended.
void check_over(const state_ptr& st);
// terminate(): jobs fail, workers get SIGTERM, then SIGKILL after a grace.
void terminate_pool(dispatcher* self, const state_ptr& st);
// The dispatcher's end, however it came: no caller waits for ever.
void on_dispatcher_end(const state_ptr& st, const std::string& reason);

} // namespace mproc::detail
