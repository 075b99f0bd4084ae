// Reading a job's results on the caller's thread: chunk by chunk, in order or as they
// finish, with the errors a task raised.
#include "mproc/actors/pool_job.hpp"

#include <caf/actor_system.hpp>

#include "mproc/runtime/node.hpp"
#include "mproc/serialization/unpack.hpp"

namespace mproc::detail {

namespace {

constexpr const char* malformed = "the worker sent a malformed result";

// [values (n), {index: "error"}]
bool well_formed(const msgpack::object& o, std::size_t items) {
  if (o.type != msgpack::type::ARRAY || o.via.array.size != 2)
    return false;
  const auto& values = o.via.array.ptr[0];
  const auto& failures = o.via.array.ptr[1];
  if (values.type != msgpack::type::ARRAY || values.via.array.size != items
      || failures.type != msgpack::type::MAP)
    return false;
  for (std::uint32_t i = 0; i < failures.via.map.size; ++i) {
    const auto& kv = failures.via.map.ptr[i];
    if (kv.key.type != msgpack::type::POSITIVE_INTEGER || kv.key.via.u64 >= items
        || kv.val.type != msgpack::type::STR)
      return false;
  }
  return true;
}

void throw_failure(const caf::error& e) {
  throw error(e, this_node().system().render(e));
}

} // namespace

chunk_results::chunk_results(const settled_chunk& chunk)
  : items_(chunk.items), failure_(chunk.failure) {
  if (!failure_.empty())
    return;
  try {
    handle_ = wire::unpack_bounded(chunk.encoded.data(), chunk.encoded.size());
  } catch (const std::exception&) {
    failure_ = malformed;
    return;
  }
  const auto& o = handle_.get();
  if (!well_formed(o, items_)) {
    failure_ = malformed;
    return;
  }
  values_ = o.via.array.ptr[0].via.array.ptr;
  failures_ = &o.via.array.ptr[1].via.map;
}

bool chunk_results::ok(std::size_t i) const {
  if (!failure_.empty())
    return false;
  for (std::uint32_t k = 0; k < failures_->size; ++k)
    if (failures_->ptr[k].key.via.u64 == i)
      return false;
  return true;
}

const msgpack::object& chunk_results::value(std::size_t i) const {
  return values_[i];
}

std::string chunk_results::error(std::size_t i) const {
  if (!failure_.empty())
    return failure_;
  for (std::uint32_t k = 0; k < failures_->size; ++k)
    if (failures_->ptr[k].key.via.u64 == i)
      return failures_->ptr[k].val.as<std::string>();
  return {};
}

const settled_chunk* chunk_result(pool_job& job, std::size_t i,
                                  std::optional<std::chrono::milliseconds> timeout) {
  std::unique_lock lock{job.m};
  if (i >= job.chunks)
    return nullptr;
  auto ready = [&] { return job.results[i].has_value() || job.failure; };
  if (!timeout)
    job.cv.wait(lock, ready);
  else if (!job.cv.wait_for(lock, *timeout, ready))
    throw_timeout("next");
  if (job.failure)
    throw_failure(job.failure);
  return &*job.results[i];
}

std::optional<std::size_t> next_finished(pool_job& job) {
  std::unique_lock lock{job.m};
  job.cv.wait(lock, [&] { return !job.finished.empty() || job.complete_locked(); });
  if (job.finished.empty()) {
    if (job.failure)
      throw_failure(job.failure);
    return std::nullopt;
  }
  auto i = job.finished.front();
  job.finished.pop_front();
  return i;
}

void release_chunk(pool_job& job, std::size_t i) {
  std::lock_guard guard{job.m};
  if (i < job.chunks && job.results[i])
    bytes{}.swap(job.results[i]->encoded);
}

bool job_ready(pool_job& job) {
  std::lock_guard guard{job.m};
  return job.complete_locked();
}

bool job_wait(pool_job& job, std::optional<std::chrono::milliseconds> timeout) {
  std::unique_lock lock{job.m};
  auto ready = [&] { return job.complete_locked(); };
  if (!timeout) {
    job.cv.wait(lock, ready);
    return true;
  }
  return job.cv.wait_for(lock, *timeout, ready);
}

void job_on_done(pool_job& job, std::function<void()> fn) {
  {
    std::lock_guard guard{job.m};
    if (!job.complete_locked()) {
      job.on_done.push_back(std::move(fn));
      return;
    }
  }
  fn();
}

const std::string& job_task(const pool_job& job) {
  return job.task;
}

void throw_task_error(const std::string& task, std::size_t item, const std::string& why) {
  auto text = task + "(item " + std::to_string(item) + "): " + why;
  throw error(make_error(errc::task_failed, text), text);
}

void throw_timeout(const char* call) {
  auto text = std::string{call} + ": no result within the timeout";
  throw error(make_error(errc::timeout, text), text);
}

} // namespace mproc::detail
