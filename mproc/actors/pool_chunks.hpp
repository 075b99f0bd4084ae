// A pool's chunks: how a call's items become the encoded chunks workers run, and how their
// results come back to the caller, decoded in order (pool.hpp's templates, docs/pool.md).
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <functional>
#include <iterator>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "mproc/runtime/task.hpp"
#include "mproc/serialization/bytes.hpp"
#include "mproc/serialization/codec.hpp"

namespace mproc::detail {

struct pool_job;

// Encodes the items of one chunk: [task, star, [item, item, ...]]; the header is written
// here, the `items` items follow through pk.
[[noreturn]] void throw_unsendable_argument(const std::string& why);

struct chunk_encoder {
  // The buffer starts near the chunk's size, not at msgpack-c's 8 KiB: a map with chunksize
  // 1 allocated and freed 8 KiB per item. It grows as needed past the guess.
  chunk_encoder(const std::string& task, bool star, std::size_t items)
    : buf{std::clamp<std::size_t>(32 + 10 * items, 64, 1 << 20)} {
    pk.pack_array(3);
    pk.pack(task);
    pk.pack(star);
    pk.pack_array(static_cast<std::uint32_t>(items));
  }
  wire::buffer buf;
  wire::packer pk{buf};
  wire::codec_state st;
  // Throws mproc::error bad_arguments when an argument could not be encoded: a handle (a
  // lock, queue, pipe end, manager proxy) needs a link to travel, and a chunk has none.
  bytes finish() {
    if (!st.ok())
      throw_unsendable_argument(st.error);
    return bytes(buf.data(), buf.data() + buf.size());
  }
};

// A chunk that has run: what its worker sent, or why it never finished. A view into its
// job, valid until the chunk is released (release_chunk) or the job ends.
struct settled_chunk {
  std::uint32_t items = 0;
  std::string_view encoded;              // [values, {index: "error"}], as a worker sends it
  // Set when every item failed with it (its worker kept dying).
  const std::string* failure = nullptr;
};

// The results of one chunk, checked: a malformed answer fails every item.
class chunk_results {
public:
  explicit chunk_results(const settled_chunk& chunk);
  std::size_t size() const { return items_; }
  bool ok(std::size_t i) const;
  const msgpack::object& value(std::size_t i) const;
  std::string error(std::size_t i) const;

private:
  std::size_t items_;
  std::string failure_;
  msgpack::object_handle handle_;
  const msgpack::object* values_ = nullptr;
  const msgpack::object_map* failures_ = nullptr;  // empty in the common case
};

using chunk_source = std::function<std::optional<std::pair<bytes, std::uint32_t>>()>;

// Waits for chunk `i`; nothing past the last chunk. Throws timeout, or the job's failure as
// a whole (terminated, workers that cannot start).
std::optional<settled_chunk> chunk_result(pool_job& job, std::size_t i,
                                          std::optional<std::chrono::milliseconds> timeout);
// The index of the next chunk to finish, in finishing order; nullopt when none is left.
// Throws errc::timeout when none finished within `timeout`.
std::optional<std::size_t> next_finished(pool_job& job,
                                         std::optional<std::chrono::milliseconds> timeout);
// Chunk `i`'s encoded results were decoded: they go once every chunk of the job that came
// back in the same pull was released (imap: memory stays bounded, a pull at a time).
void release_chunk(pool_job& job, std::size_t i);
bool job_ready(pool_job& job);
bool job_wait(pool_job& job, std::optional<std::chrono::milliseconds> timeout);
void job_on_done(pool_job& job, std::function<void()> fn);
const std::string& job_task(const pool_job& job);
[[noreturn]] void throw_task_error(const std::string& task, std::size_t item,
                                   const std::string& why);
[[noreturn]] void throw_timeout(const char* call);

// The result of item `i` as a value: a void task's results are std::monostate.
template <class V>
V decode_result(const chunk_results& res, std::size_t i, const std::string& task,
                std::size_t item) {
  if (!res.ok(i))
    throw_task_error(task, item, res.error(i));
  V out{};
  if constexpr (!std::is_same_v<V, std::monostate>) {
    wire::codec_state st;
    if (!wire::codec<V>::decode(res.value(i), out, st))
      throw_task_error(task, item, "the result cannot be decoded: " + st.error);
  }
  return out;
}

// What a task of type F yields to the caller: its result, std::monostate for void.
template <class F>
using result_of_t = std::conditional_t<std::is_void_v<typename task_signature<F>::result>,
                                       std::monostate, typename task_signature<F>::result>;

template <class F>
using arguments_of_t = typename task_signature<F>::args;

// Python's chunks grow with the input (a quarter of a worker's share); here a chunk of
// 1 M items is megabytes encoded, held in several copies at once, each in fresh pages: a
// map of 1 M integers ran 2x faster with chunks capped at 8-16 K items (docs/pool.md).
// Large items make fewer per chunk: a default chunk stays near 1/16 of a message (the
// largest message: node_options::max_frame), so 8 K items of 10 KB do not make a chunk too
// large to send, and their results likely fit one message too.
constexpr std::size_t default_chunk_cap = 8192;
constexpr std::size_t default_chunk_frames = 16;
constexpr std::size_t default_chunksize(std::size_t items, std::size_t processes,
                                        std::size_t item_bytes = 0, std::size_t chunk_bytes = 0) {
  auto groups = 4 * std::max<std::size_t>(processes, 1);
  auto cap = default_chunk_cap;
  if (item_bytes > 0 && chunk_bytes > 0)
    cap = std::clamp<std::size_t>(chunk_bytes / item_bytes, 1, default_chunk_cap);
  return std::clamp<std::size_t>((items + groups - 1) / groups, 1, cap);
}

// The largest encoded size among the first, middle and last of `inputs` (the first only
// without random access; 0 when empty, not encodable, or when reading or encoding one
// throws: the dispatcher meets it again, and fails the call with task_failed as promised).
template <class Item, class In>
std::size_t sampled_item_bytes(const In& inputs) noexcept {
  std::size_t most = 0;
  auto measure = [&](const Item& x) {
    wire::buffer buf{256};
    wire::packer pk{buf};
    wire::codec_state st;
    wire::codec<Item>::encode(pk, x, st);
    if (st.ok())
      most = std::max(most, buf.size());
  };
  try {
    if (inputs.size() == 0)
      return 0;
    auto first = inputs.begin();
    measure(*first);
    if constexpr (std::random_access_iterator<decltype(first)>) {
      auto n = static_cast<std::ptrdiff_t>(inputs.size());
      measure(first[n / 2]);
      measure(first[n - 1]);
    }
  } catch (...) {
    return 0;
  }
  return most;
}

// A chunk_source over `data`, `chunksize` items at a time. A pointer that owns nothing
// borrows the caller's container (pool::map, which waits and drops the source on leaving).
template <class Arg, class Container>
chunk_source chunks_of(std::string task, bool star, std::shared_ptr<const Container> data,
                       std::size_t chunksize) {
  struct cursor {
    std::shared_ptr<const Container> data;  // keeps a copy alive
    decltype(std::declval<const Container&>().begin()) at;
    std::size_t left;
  };
  auto cur = std::make_shared<cursor>(cursor{data, data->begin(), data->size()});
  return [=]() -> std::optional<std::pair<bytes, std::uint32_t>> {
    if (cur->left == 0)
      return std::nullopt;
    auto n = std::min(chunksize, cur->left);
    chunk_encoder enc{task, star, n};
    for (std::size_t i = 0; i < n; ++i, ++cur->at) {
      const Arg& x = *cur->at;
      wire::codec<Arg>::encode(enc.pk, x, enc.st);
    }
    cur->left -= n;
    return std::make_pair(enc.finish(), static_cast<std::uint32_t>(n));
  };
}

// Stops the dispatcher reading a blocking map's borrowed inputs, however the map ends.
void drop_source(pool_job& job);
struct source_guard {
  pool_job& job;
  ~source_guard() { drop_source(job); }
};

// Every result of a map, decoded in input order; throws the first failed item's error.
// `release`: each chunk's encoded results are freed once decoded (only a single reader may).
template <class R>
std::vector<R> collect_results(pool_job& job, std::size_t items, bool release) {
  std::vector<R> out;
  out.reserve(items);
  for (std::size_t c = 0; auto settled = chunk_result(job, c, std::nullopt); ++c) {
    {
      chunk_results res{*settled};
      for (std::size_t i = 0; i < res.size(); ++i)
        out.push_back(decode_result<R>(res, i, job_task(job), out.size()));
    }
    if (release)
      release_chunk(job, c);
  }
  return out;
}

} // namespace mproc::detail
