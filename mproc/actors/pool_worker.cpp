// The actor each pool worker process runs: pull a batch of chunks, run them, pull again with
// the results; quit when the dispatcher says so or is gone.
#include <algorithm>
#include <chrono>
#include <limits>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <caf/event_based_actor.hpp>

#include "mproc/actors/pool_protocol.hpp"
#include "mproc/actors/queue_batch.hpp"
#include "mproc/runtime/task.hpp"
#include "mproc/runtime/actor_registry.hpp"
#include "mproc/runtime/log.hpp"
#include "mproc/runtime/node.hpp"
#include "mproc/serialization/bytes.hpp"
#include "mproc/serialization/unpack.hpp"

namespace mproc::detail {

namespace {

// Runs chunks one after another into one output buffer, unpacking each into one zone: both
// are kept for the worker's life, so their memory is allocated and faulted in once, not per
// chunk (with chunks of one item, a fresh buffer and zone per chunk were the worker's
// hottest malloc and free; a fresh buffer per pull, grown from 8 KiB, made pool_map_auto's
// 8 K-item chunks a third slower).
class chunk_runner {
public:
  // Results above `limit` bytes fail the chunk's items, saying why: no message carries them.
  explicit chunk_runner(std::size_t limit = std::numeric_limits<std::size_t>::max())
    : limit_(limit) {}

  // [task, star, items] in; [values, {index: "error"}] out, valid until the next call.
  std::string_view run(std::string_view chunk);

private:
  // A buffer that grew past this is let go before the next chunk, not kept for life.
  static constexpr std::size_t keep_bytes = std::size_t{1} << 20;

  void fail_all(std::uint32_t items, const std::string& why);
  void clear_buffer();

  void refuse_oversized(std::uint32_t items);

  std::size_t limit_;
  wire::buffer buf_;
  msgpack::zone zone_;  // clear() keeps its first block, frees what a large chunk added
};

void chunk_runner::refuse_oversized(std::uint32_t items) {
  auto size = buf_.size();
  if (size <= limit_)
    return;
  clear_buffer();
  fail_all(items, "its chunk's results take " + std::to_string(size) + " bytes, more than a "
                    "message carries (" + std::to_string(limit_) + ", from node_options::"
                    "max_frame): return smaller values, or map with a smaller chunksize");
}

void chunk_runner::fail_all(std::uint32_t items, const std::string& why) {
  wire::packer pk{buf_};
  std::vector<std::pair<std::uint32_t, std::string>> failures;
  pk.pack_array(2);
  pk.pack_array(items);
  for (std::uint32_t i = 0; i < items; ++i) {
    pk.pack_nil();
    failures.emplace_back(i, why);
  }
  pack_failures(pk, failures);
}

// sbuffer tells its size, not its capacity. A run only grows the buffer, so checked before
// every run, a kept buffer never held more than keep_bytes and has at most about twice that.
void chunk_runner::clear_buffer() {
  if (buf_.size() > keep_bytes)
    buf_ = wire::buffer{};
  buf_.clear();
}

std::string_view chunk_runner::run(std::string_view chunk) {
  clear_buffer();
  zone_.clear();
  try {
    const auto o = wire::unpack_bounded(zone_, chunk.data(), chunk.size());
    if (o.type != msgpack::type::ARRAY || o.via.array.size != 3
        || o.via.array.ptr[2].type != msgpack::type::ARRAY)
      throw std::runtime_error("malformed chunk");
    auto name = o.via.array.ptr[0].as<std::string>();
    bool star = o.via.array.ptr[1].as<bool>();
    const auto& items = o.via.array.ptr[2];
    const auto* task = find_task(name);
    wire::packer pk{buf_};
    if (task && task->run) {
      task->run(items, star, pk);
      refuse_oversized(items.via.array.size);
    } else if (task)
      fail_all(items.via.array.size, "task '" + name + "' takes or returns values that "
                                       "cannot travel in a pool's chunks (handles)");
    else
      fail_all(items.via.array.size, "no task '" + name + "' in the worker: add MPROC_TASK");
  } catch (const std::exception& e) {
    clear_buffer();
    fail_all(0, e.what());  // the item count is unknown: the pool reports a malformed result
  }
  return {buf_.data(), buf_.size()};
}

// The initializer is a chunk of one item, run like any other.
bool run_initializer(const bytes& chunk) {
  chunk_runner runner;
  auto result = runner.run({chunk.data(), chunk.size()});
  try {
    auto handle = wire::unpack_bounded(result.data(), result.size());
    const auto& values = handle.get().via.array.ptr[0].via.array;
    const auto& failures = handle.get().via.array.ptr[1].via.map;
    if (values.size == 1 && failures.size == 0)
      return true;
    log::error("pool initializer failed: ",
               failures.size > 0 ? failures.ptr[0].val.as<std::string>() : "malformed chunk");
  } catch (const std::exception& e) {
    log::error("pool initializer: malformed chunk: ", e.what());
  }
  return false;
}

// Room for results in one message: the smaller max_frame of this node and the pool's,
// less what the message around them takes (4 bytes of offset per chunk, at most 4 K chunks
// a pull, and the envelope). Results beyond it would be refused on the way.
std::size_t results_room(std::uint32_t pool_max_frame) {
  auto frame = static_cast<std::size_t>(std::min(this_node().max_frame(), pool_max_frame));
  return frame - std::min(frame / 8, std::size_t{1} << 20);
}

struct worker_state {
  worker_state(caf::actor pool, std::uint32_t pool_max_frame)
    : dispatcher(std::move(pool)), room(results_room(pool_max_frame)), runner(room) {}

  caf::actor dispatcher;
  std::uint32_t allowance = 0;  // chunks it may still take; maxtasksperchild
  std::size_t room;
  chunk_runner runner;
};

// Sends ahead, in order, what of `results` would not fit in one message with the rest;
// returns the rest. Each chunk's results fit (chunk_runner refuses larger ones).
item_batch send_ahead(caf::event_based_actor* self, const worker_state& st,
                      item_batch results) {
  if (results.byte_size() <= st.room)
    return results;
  item_batch part;
  for (std::size_t i = 0; i < results.size(); ++i) {
    if (!part.empty() && part.byte_size() + results[i].size() > st.room) {
      self->send(st.dispatcher, pool_results_atom::value, std::move(part));
      part = item_batch{};
    }
    part.append(results[i]);
  }
  return part;
}

void pull(caf::event_based_actor* self, std::shared_ptr<worker_state> st, item_batch results,
          std::chrono::nanoseconds busy) {
  results = send_ahead(self, *st, std::move(results));
  self->request(st->dispatcher, caf::infinite, pool_pull_atom::value, std::move(results),
                st->allowance, this_node().max_frame(),
                static_cast<std::uint64_t>(busy.count()))
    .then(
      [=](item_batch& chunks) {
        if (chunks.empty()) {
          self->quit();
          return;
        }
        // Results take about as much room as their inputs (more grows the batch).
        item_batch out;
        out.reserve(chunks.size(), std::min(2 * chunks.byte_size(), std::size_t{1} << 20));
        auto began = std::chrono::steady_clock::now();
        for (std::size_t i = 0; i < chunks.size(); ++i)
          out.append(st->runner.run(chunks[i]));
        auto busy = std::chrono::steady_clock::now() - began;
        st->allowance -= std::min<std::uint32_t>(st->allowance,
                                                 static_cast<std::uint32_t>(chunks.size()));
        pull(self, st, std::move(out), busy);
      },
      [=](caf::error&) { self->quit(); });  // the pool is gone
}

caf::behavior mproc_pool_worker(caf::event_based_actor* self, caf::actor dispatcher,
                                bytes initializer, std::uint32_t maxtasks,
                                std::uint32_t pool_max_frame) {
  auto st = std::make_shared<worker_state>(std::move(dispatcher), pool_max_frame);
  st->allowance = maxtasks == 0 ? std::numeric_limits<std::uint32_t>::max() : maxtasks;
  if (!initializer.empty() && !run_initializer(initializer)) {
    self->quit(caf::exit_reason::user_shutdown);  // the process exits with 1
    return {};
  }
  pull(self, st, {}, {});
  return {[](caf::unit_t) {}};  // everything happens in pull()'s answers
}

const bool registered =
  register_actor(make_actor_entry<&mproc_pool_worker>("mproc_pool_worker"));

} // namespace

const char* pool_worker_name() {
  (void)registered;
  return "mproc_pool_worker";
}

} // namespace mproc::detail
