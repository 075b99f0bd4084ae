// The pool's handle: its engine (the dispatcher actor and the workers' status) and the
// calls that submit jobs to it. Jobs are in pool_job.*, the dispatcher in pool_dispatcher.*.
#include "mproc/actors/pool.hpp"

#include <atomic>
#include <cstdint>
#include <exception>
#include <limits>
#include <mutex>
#include <optional>
#include <utility>

#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/send.hpp>

#include "mproc/actors/pool_dispatcher.hpp"
#include "mproc/actors/pool_job.hpp"
#include "mproc/runtime/blocking.hpp"
#include "mproc/actors/pool_protocol.hpp"
#include "mproc/runtime/node.hpp"

namespace mproc {

namespace detail {

class pool_engine {
public:
  pool_engine(node& owner, pool_options options)
    : status_(std::make_shared<pool_status>()), count_(options.processes),
      max_frame_(owner.max_frame()) {
    dispatcher_ = owner.system().spawn(pool_dispatcher, std::move(options), status_);
  }
  caf::actor dispatcher_;
  std::shared_ptr<pool_status> status_;
  std::size_t count_;
  std::size_t max_frame_;
  std::atomic<bool> closed_{false};  // no more calls: close() or terminate() was called
  // A call's check of closed_ and its send, against close() and terminate(): a job sent
  // after the dispatcher ended would be dropped, and its caller would wait for ever.
  std::mutex calls_mtx_;
};

void throw_unsendable_argument(const std::string& why) {
  auto text = "a pool task's argument cannot travel: " + why
              + " (locks, queues, pipe ends and manager proxies go to processes, not pools)";
  throw error(make_error(errc::bad_arguments, text), text);
}

pool_core::pool_core(node& owner, pool_options options) {
  if (options.processes == 0)
    options.processes = cpu_count();
  // Workers count their chunks in 32 bits: a larger limit would wrap to a small one.
  if (options.maxtasksperchild > std::numeric_limits<std::uint32_t>::max())
    throw error(make_error(errc::bad_arguments, "maxtasksperchild above 2^32-1"),
                "pool: maxtasksperchild " + std::to_string(options.maxtasksperchild)
                  + " is above 2^32-1 (0 means no limit)");
  if (options.initializer && find_task(options.initializer->task) == nullptr)
    throw error(make_error(errc::unknown_actor_name, "no task '" + options.initializer->task + "'"),
                "pool initializer '" + options.initializer->task + "' is not a registered task");
  (void)pool_worker_name();
  engine_ = std::make_shared<pool_engine>(owner, std::move(options));
}

pool_core::~pool_core() {
  terminate();
}

namespace {

// The first chunk is encoded here, in the caller, so that an argument that cannot travel (a
// handle) is refused at the call (bad_arguments) rather than failing the job later. Any other
// failure to read the inputs stays where it was: the dispatcher meets it, as task_failed.
// The other chunks are encoded as workers take them.
chunk_source first_chunk_now(chunk_source next) {
  std::optional<std::pair<bytes, std::uint32_t>> first;
  std::exception_ptr failed;
  try {
    first = next();
  } catch (const error& e) {
    if (e.code() == errc::bad_arguments)
      throw;
    failed = std::current_exception();
  } catch (...) {
    failed = std::current_exception();
  }
  return [first = std::move(first), failed, next = std::move(next), taken = false]() mutable {
    if (std::exchange(taken, true))
      return next();
    if (failed)
      std::rethrow_exception(failed);
    return std::move(first);
  };
}

} // namespace

std::shared_ptr<pool_job> pool_core::submit(std::string task, std::size_t chunks,
                                            chunk_source next) {
  auto refuse_if_closed = [this] {
    if (engine_->closed_)
      throw error(make_error(errc::closed, "the pool is closed"), "the pool is closed");
  };
  refuse_if_closed();  // before any encoding: a closed pool says so, whatever the inputs
  if (chunks > 0)
    next = first_chunk_now(std::move(next));
  auto job = std::make_shared<pool_job>(chunks);
  job->task = std::move(task);
  job->set_source(std::move(next));
  std::lock_guard guard{engine_->calls_mtx_};
  refuse_if_closed();
  if (chunks == 0)
    return job;
  if (!engine_->status_->hand_in(job))
    job->fail(make_error(errc::closed, "the pool's dispatcher has ended"));
  else  // ahead of any close or terminate in the dispatcher's mailbox
    caf::anon_send(engine_->dispatcher_, pool_control{pool_control::submit});
  return job;
}

void pool_core::close() {
  std::lock_guard guard{engine_->calls_mtx_};
  engine_->closed_ = true;
  caf::anon_send(engine_->dispatcher_, pool_control{pool_control::close});
}

void pool_core::terminate() {
  if (!engine_)
    return;
  {
    std::lock_guard guard{engine_->calls_mtx_};
    engine_->closed_ = true;
    caf::anon_send(engine_->dispatcher_, pool_control{pool_control::terminate});
  }
  join(std::chrono::seconds{10});
  caf::anon_send_exit(engine_->dispatcher_, caf::exit_reason::user_shutdown);
  // Without its dispatcher nobody would end a later join() (workers still ending after
  // the 10 s were sent SIGKILL; the node reaps them).
  engine_->status_->finish();
}

bool pool_core::join(std::optional<std::chrono::milliseconds> timeout) {
  if (!engine_->closed_)
    throw std::logic_error("pool::join() before close() or terminate(): it would wait forever");
  auto& status = *engine_->status_;
  std::unique_lock lock{status.m};
  auto over = [&] { return status.over; };
  if (!over())
    will_block();
  if (!timeout) {
    status.cv.wait(lock, over);
    return true;
  }
  return status.cv.wait_for(lock, *timeout, over);
}

std::size_t pool_core::processes() const {
  return engine_->count_;
}

std::size_t pool_core::max_frame() const {
  return engine_->max_frame_;
}

} // namespace detail

pool::pool(node& owner, pool_options options) : core_(owner, std::move(options)) {}

pool::~pool() = default;

} // namespace mproc
