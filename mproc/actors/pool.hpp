// Pool: Python's multiprocessing.Pool over worker processes — and it never hangs.
//
//   std::int64_t square(std::int64_t x) { return x * x; }
//   MPROC_TASK(square);
//
//   mproc::pool pool{node, {.processes = 4}};
//   auto squares = pool.map(square, std::vector<std::int64_t>{1, 2, 3});   // {1, 4, 9}
//   auto r = pool.apply_async(square, std::int64_t{7});
//   r.get(1s);                                                              // 49
//
// Workers pull work when idle. A task that throws fails its item with "<type>: <what()>" and
// the worker lives on. A worker that dies mid-task is replaced and its unfinished work is
// retried on another worker up to options.max_retries times, then fails with an error naming
// the worker's exit reason. docs/pool.md describes the failure semantics.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "mproc/actors/pool_chunks.hpp"
#include "mproc/runtime/blocking.hpp"
#include "mproc/runtime/deadline.hpp"
#include "mproc/runtime/errors.hpp"
#include "mproc/runtime/task.hpp"
#include "mproc/serialization/bytes.hpp"

namespace mproc {

class node;

// A task and its arguments, for options.initializer: mproc::bind_task(init, "config.ini").
struct task_call {
  std::string task;
  bytes chunk;  // a chunk of one item, as a worker runs it: [task, true, [arguments]]
};

struct pool_options {
  std::size_t processes = 0;         // 0: cpu_count(), as Python
  std::optional<task_call> initializer;  // run once in each worker before its first task
  std::size_t maxtasksperchild = 0;  // 0: workers live as long as the pool; else recycled
  std::size_t max_retries = 2;       // a chunk whose worker died is tried this many more times
  std::string name = "PoolWorker";   // worker processes are <name>-1, <name>-2, ...
};

namespace detail {

struct pool_job;
class pool_engine;

// What the typed calls share: a job per call.
class pool_core {
public:
  pool_core(node& owner, pool_options options);
  ~pool_core();
  std::shared_ptr<pool_job> submit(std::string task, std::size_t chunks, chunk_source next);
  void close();
  void terminate();
  bool join(std::optional<std::chrono::milliseconds> timeout);
  std::size_t processes() const;
  std::size_t max_frame() const;  // the node's: the largest message a chunk may fill

private:
  std::shared_ptr<pool_engine> engine_;
};

} // namespace detail

template <class R, class... P, class... A>
task_call bind_task(R (*fn)(P...), A&&... args) {
  std::tuple<std::decay_t<P>...> values{std::forward<A>(args)...};
  auto name = task_name(reinterpret_cast<const void*>(fn));
  detail::chunk_encoder enc{name, true, 1};
  wire::codec<decltype(values)>::encode(enc.pk, values, enc.st);
  return {name, enc.finish()};
}

// The result of apply_async (R) or map_async (std::vector<R>).
template <class R>
class async_result {
public:
  using decoder = std::function<R(detail::pool_job&)>;
  async_result(std::shared_ptr<detail::pool_job> job, decoder decode)
    : job_(std::move(job)), decode_(std::move(decode)) {}

  // Throws mproc::error: task_failed (the task's error), timeout.
  R get() { return decode_(*job_); }
  template <class Rep, class Period>
  R get(std::chrono::duration<Rep, Period> timeout) {
    if (!detail::job_wait(*job_, capped(timeout)))
      detail::throw_timeout("get");
    return decode_(*job_);
  }
  bool ready() const { return detail::job_ready(*job_); }
  // Whether get() returns rather than throws; std::logic_error before ready(), as Python.
  bool successful() const {
    if (!ready())
      throw std::logic_error("async_result::successful() before the result is ready");
    try {
      decode_(*job_);
      return true;
    } catch (const error&) {
      return false;
    }
  }
  void wait() { detail::job_wait(*job_, std::nullopt); }
  template <class Rep, class Period>
  bool wait(std::chrono::duration<Rep, Period> timeout) {
    return detail::job_wait(*job_, capped(timeout));
  }
  // Python's callback / error_callback: called once ready, from the pool's own thread, or at
  // once if already ready. Keep them short, and never wait on the pool from one: the pool's
  // thread is the one that would answer.
  void then(std::function<void(const R&)> callback,
            std::function<void(const error&)> error_callback = {}) {
    auto job = job_;
    auto decode = decode_;
    detail::job_on_done(*job_, [job, decode, callback, error_callback] {
      // Exactly one of the two runs: what the callback throws is its own, not the task's.
      std::optional<R> value;
      try {
        value.emplace(decode(*job));
      } catch (const error& e) {
        if (error_callback)
          error_callback(e);
        return;
      }
      if (callback)
        callback(*value);
    });
  }

private:
  std::shared_ptr<detail::pool_job> job_;
  decoder decode_;
};

// imap / imap_unordered: results as they come (in input order, or in finishing order).
template <class R>
class result_stream {
public:
  // Chunks of `chunksize` items (the last may have fewer).
  result_stream(std::shared_ptr<detail::pool_job> job, bool ordered, std::size_t chunksize)
    : job_(std::move(job)), ordered_(ordered), chunksize_(chunksize) {}

  // The next result; nullopt at the end. Throws the task's error for a failed item. Several
  // threads may share a stream (as Python's IMapIterator): each result goes to one of them.
  std::optional<R> next() {
    std::unique_lock guard{*mtx_, std::defer_lock};
    if (!guard.try_lock()) {
      will_block();
      guard.lock();
    }
    return next_impl(std::nullopt);
  }
  template <class Rep, class Period>
  std::optional<R> next(std::chrono::duration<Rep, Period> timeout) {
    // Another thread may wait in an untimed next() with the lock: one deadline covers the
    // wait for it and for the result.
    using clock = std::chrono::steady_clock;
    auto deadline = clock::now() + capped(timeout);
    std::unique_lock guard{*mtx_, std::defer_lock};
    if (!guard.try_lock()) {
      will_block();
      if (!guard.try_lock_until(deadline))
        detail::throw_timeout("next");
    }
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now());
    return next_impl(std::max(left, std::chrono::milliseconds{0}));
  }

  // Range-for over the results.
  class iterator {
  public:
    iterator(result_stream* s) : s_(s) { advance(); }
    const R& operator*() const { return *value_; }
    iterator& operator++() {
      advance();
      return *this;
    }
    bool operator!=(std::nullptr_t) const { return value_.has_value(); }

  private:
    void advance() { value_ = s_ ? s_->next() : std::nullopt; }
    result_stream* s_;
    std::optional<R> value_;
  };
  iterator begin() { return iterator{this}; }
  std::nullptr_t end() { return nullptr; }

private:
  std::optional<R> next_impl(std::optional<std::chrono::milliseconds> timeout) {
    while (!current_ || pos_ >= current_->size()) {
      if (ordered_) {
        auto c = detail::chunk_result(*job_, chunk_, timeout);
        if (!c)
          return std::nullopt;
        current_.emplace(*c);
        detail::release_chunk(*job_, chunk_);  // decoded: the bytes are not needed again
        base_ = item_;
        ++chunk_;
      } else {
        auto i = detail::next_finished(*job_, timeout);
        if (!i)
          return std::nullopt;
        current_.emplace(*detail::chunk_result(*job_, *i, std::nullopt));
        detail::release_chunk(*job_, *i);
        base_ = *i * chunksize_;  // the input's number of the chunk's first item
      }
      pos_ = 0;
    }
    ++item_;
    auto i = pos_++;
    return detail::decode_result<R>(*current_, i, detail::job_task(*job_), base_ + i);
  }

  std::shared_ptr<detail::pool_job> job_;
  bool ordered_;
  std::size_t chunksize_;
  std::unique_ptr<std::timed_mutex> mtx_ = std::make_unique<std::timed_mutex>();
  std::optional<detail::chunk_results> current_;
  std::size_t chunk_ = 0;
  std::size_t pos_ = 0;
  std::size_t item_ = 0;
  std::size_t base_ = 0;
};

class pool {
public:
  pool(node& owner, pool_options options = {});
  ~pool();  // terminate(), as Python's context manager does
  pool(const pool&) = delete;
  pool& operator=(const pool&) = delete;

  // fn(x) for every x; chunksize 0 chooses ceil(n / (4 * processes)) as Python, at most
  // detail::default_chunk_cap items, fewer of large items (about max_frame / 16 bytes a
  // chunk). Throws the first failed item's error (errc::task_failed).
  template <class F, class In>
  auto map(F* fn, const In& inputs, std::size_t chunksize = 0) {
    return map_in_place(fn, inputs, chunksize, false);
  }
  // fn(args...) for every tuple of arguments.
  template <class F, class In>
  auto starmap(F* fn, const In& inputs, std::size_t chunksize = 0) {
    return map_in_place(fn, inputs, chunksize, true);
  }
  template <class F, class In>
  auto map_async(F* fn, const In& inputs, std::size_t chunksize = 0) {
    return map_async_impl(fn, inputs, chunksize, false);
  }
  template <class F, class In>
  auto starmap_async(F* fn, const In& inputs, std::size_t chunksize = 0) {
    return map_async_impl(fn, inputs, chunksize, true);
  }
  // Results one at a time, in input order, as soon as each is known.
  template <class F, class In>
  auto imap(F* fn, const In& inputs, std::size_t chunksize = 1) {
    return stream(fn, inputs, chunksize, true);
  }
  // Results one at a time, in the order they finish.
  template <class F, class In>
  auto imap_unordered(F* fn, const In& inputs, std::size_t chunksize = 1) {
    return stream(fn, inputs, chunksize, false);
  }

  template <class F, class... A>
  auto apply(F* fn, A&&... args) {
    return apply_async(fn, std::forward<A>(args)...).get();
  }
  template <class F, class... A>
  auto apply_async(F* fn, A&&... args) {
    using R = detail::result_of_t<F*>;
    using Args = detail::arguments_of_t<F*>;
    auto job = submit(fn, std::vector<Args>{Args{std::forward<A>(args)...}}, 1, true);
    return async_result<R>{job, [](detail::pool_job& j) {
                             detail::chunk_results res{*detail::chunk_result(j, 0, std::nullopt)};
                             return detail::decode_result<R>(res, 0, detail::job_task(j), 0);
                           }};
  }

  // No more calls; workers end once the work submitted is done.
  void close() { core_.close(); }
  // Stops the workers at once; unfinished calls fail with errc::closed.
  void terminate() { core_.terminate(); }
  // Waits for the workers to end. Only after close() or terminate() (else std::logic_error:
  // a running pool's workers never end).
  void join() { core_.join(std::nullopt); }
  template <class Rep, class Period>
  bool join(std::chrono::duration<Rep, Period> timeout) {
    return core_.join(capped(timeout));
  }
  std::size_t processes() const { return core_.processes(); }

private:
  template <class Item, class In>
  std::size_t chunk_size_for(const In& inputs, std::size_t chunksize) const {
    if (chunksize != 0)
      return chunksize;
    return detail::default_chunksize(inputs.size(), processes(),
                                     detail::sampled_item_bytes<Item>(inputs),
                                     core_.max_frame() / detail::default_chunk_frames);
  }

  // A job over a copy of `inputs`, `chunksize` items per chunk: the call returns at once.
  template <class F, class In>
  std::shared_ptr<detail::pool_job> submit(F* fn, const In& inputs, std::size_t chunksize,
                                           bool star) {
    using Item = typename In::value_type;
    return submit_over<Item>(
      fn, std::make_shared<const std::vector<Item>>(inputs.begin(), inputs.end()), chunksize,
      star);
  }

  template <class Item, class F, class Container>
  std::shared_ptr<detail::pool_job> submit_over(F* fn, std::shared_ptr<const Container> data,
                                                std::size_t chunksize, bool star) {
    auto name = task_name(reinterpret_cast<const void*>(fn));
    auto chunks = data->size() / chunksize + (data->size() % chunksize != 0 ? 1 : 0);
    return core_.submit(name, chunks,
                        detail::chunks_of<Item>(name, star, std::move(data), chunksize));
  }

  // The blocking map reads `inputs` where they are instead of copying them (the caller
  // waits, and the guard stops the reading before it returns or throws), and frees each
  // chunk's results once decoded: both copies faulted in fresh pages (docs/pool.md).
  template <class F, class In>
  auto map_in_place(F* fn, const In& inputs, std::size_t chunksize, bool star) {
    using R = detail::result_of_t<F*>;
    std::shared_ptr<const In> borrowed{std::shared_ptr<const void>{}, &inputs};
    auto job = submit_over<typename In::value_type>(
      fn, borrowed, chunk_size_for<typename In::value_type>(inputs, chunksize), star);
    detail::source_guard guard{*job};
    return detail::collect_results<R>(*job, inputs.size(), true);
  }

  template <class F, class In>
  auto map_async_impl(F* fn, const In& inputs, std::size_t chunksize, bool star) {
    using R = detail::result_of_t<F*>;
    auto n = inputs.size();
    auto job = submit(fn, inputs, chunk_size_for<typename In::value_type>(inputs, chunksize), star);
    return async_result<std::vector<R>>{job, [n](detail::pool_job& j) {
                                          return detail::collect_results<R>(j, n, false);
                                        }};
  }

  template <class F, class In>
  auto stream(F* fn, const In& inputs, std::size_t chunksize, bool ordered) {
    chunksize = std::max<std::size_t>(chunksize, 1);
    auto job = submit(fn, inputs, chunksize, false);
    return result_stream<detail::result_of_t<F*>>{job, ordered, chunksize};
  }

  detail::pool_core core_;
};

} // namespace mproc
