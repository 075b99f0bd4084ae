// A job's results: settled by the dispatcher as workers send them, read on the caller's
// thread chunk by chunk, in order or as they finish, with the errors a task raised.
#include "mproc/actors/pool_job.hpp"

#include <algorithm>
#include <new>

#include <caf/actor_system.hpp>

#include "mproc/runtime/blocking.hpp"
#include "mproc/runtime/errors.hpp"
#include "mproc/runtime/log.hpp"
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

pool_job::pool_job(std::size_t n)
  : chunks(n), slots_(static_cast<slot*>(std::calloc(std::max<std::size_t>(n, 1), sizeof(slot)))) {
  if (!slots_)
    throw std::bad_alloc{};
}

void pool_job::settle(std::shared_ptr<const item_batch> results, std::vector<ran_chunk>&& ran) {
  std::unique_lock lock{m};
  if (failure)
    return;
  std::size_t n = 0;
  held_batch* held = nullptr;
  auto drop_if_unused = [&] {  // every chunk in it settled before: nothing reads it
    if (held && held->unreleased == 0)
      held->results.reset();
  };
  try {
    held = &batches_.emplace_back(held_batch{std::move(results), 0});
    for (auto& c : ran) {
      if (slots_[c.index].from)
        continue;  // settled before: the first answer stays
      // What may throw first; the slot, set last, counts the chunk as settled.
      finished.push_back(c.index);
      slots_[c.index] = {held, c.at, c.items};
      ++held->unreleased;
      ++n;
    }
  } catch (...) {
    drop_if_unused();
    finish_settling(n, std::move(lock));  // what was settled counts, and is announced
    throw;
  }
  drop_if_unused();
  finish_settling(n, std::move(lock));
}

void pool_job::settle_failed(std::size_t index, std::uint32_t items, std::string why) {
  std::unique_lock lock{m};
  if (slots_[index].from || failure)
    return;
  failures_[index] = std::move(why);
  finished.push_back(index);
  slots_[index] = {&no_results_, released, items};
  finish_settling(1, std::move(lock));
}

void pool_job::finish_settling(std::size_t n, std::unique_lock<std::mutex> lock) {
  if (n == 0)
    return;
  done += n;
  announce(std::move(lock));
}

void pool_job::fail(caf::error why) {
  std::unique_lock lock{m};
  if (complete_locked())
    return;
  failure = std::move(why);
  announce(std::move(lock));
}

void pool_job::announce(std::unique_lock<std::mutex> lock) {
  std::vector<std::function<void()>> callbacks;
  if (complete_locked())
    callbacks.swap(on_done);
  lock.unlock();
  cv.notify_all();
  // On the dispatcher's thread: a callback's exception must not end the dispatcher (every
  // later call would wait for it forever), so it is reported and dropped.
  for (auto& fn : callbacks) {
    try {
      fn();
    } catch (...) {
      log::error("a pool callback threw (", describe_current_exception(), "); the pool goes on");
    }
  }
}

std::optional<settled_chunk> pool_job::settled_locked(std::size_t index) const {
  const auto& s = slots_[index];
  if (!s.from)
    return std::nullopt;
  if (s.from == &no_results_)
    return settled_chunk{s.items, {}, &failures_.at(index)};
  auto encoded = s.at == released ? std::string_view{} : (*s.from->results)[s.at];
  return settled_chunk{s.items, encoded, nullptr};
}

void pool_job::set_source(chunk_source next) {
  std::lock_guard guard{source_m_};
  source_ = std::move(next);
}

std::optional<std::pair<bytes, std::uint32_t>> pool_job::feed() {
  std::lock_guard guard{source_m_};
  if (fed >= chunks || !source_)
    return std::nullopt;
  return source_();
}

void pool_job::drop_source() {
  chunk_source gone;
  std::lock_guard guard{source_m_};
  gone.swap(source_);
}

void drop_source(pool_job& job) {
  job.drop_source();
}

void pool_job::release_locked(std::size_t index) {
  auto& s = slots_[index];
  if (!s.from || s.from == &no_results_ || s.at == released)
    return;
  s.at = released;
  if (--s.from->unreleased == 0)
    s.from->results.reset();
}

chunk_results::chunk_results(const settled_chunk& chunk)
  : items_(chunk.items), failure_(chunk.failure ? *chunk.failure : std::string{}) {
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

std::optional<settled_chunk> chunk_result(pool_job& job, std::size_t i,
                                          std::optional<std::chrono::milliseconds> timeout) {
  std::unique_lock lock{job.m};
  if (i >= job.chunks)
    return std::nullopt;
  std::optional<settled_chunk> chunk;
  auto ready = [&] { return (chunk = job.settled_locked(i)) || job.failure; };
  if (!ready())
    will_block();
  if (!timeout)
    job.cv.wait(lock, ready);
  else if (!job.cv.wait_for(lock, *timeout, ready))
    throw_timeout("next");
  if (job.failure)
    throw_failure(job.failure);
  return chunk;
}

std::optional<std::size_t> next_finished(pool_job& job,
                                         std::optional<std::chrono::milliseconds> timeout) {
  std::unique_lock lock{job.m};
  auto ready = [&] { return !job.finished.empty() || job.complete_locked(); };
  if (!ready())
    will_block();
  if (!timeout)
    job.cv.wait(lock, ready);
  else if (!job.cv.wait_for(lock, *timeout, ready))
    throw_timeout("next");
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
  if (i < job.chunks)
    job.release_locked(i);
}

bool job_ready(pool_job& job) {
  std::lock_guard guard{job.m};
  return job.complete_locked();
}

bool job_wait(pool_job& job, std::optional<std::chrono::milliseconds> timeout) {
  std::unique_lock lock{job.m};
  auto ready = [&] { return job.complete_locked(); };
  if (!ready())
    will_block();
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
