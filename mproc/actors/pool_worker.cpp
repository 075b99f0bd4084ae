// The actor each pool worker process runs: pull a batch of chunks, run them, pull again with
// the results; quit when the dispatcher says so or is gone.
#include <algorithm>
#include <limits>

#include <caf/event_based_actor.hpp>

#include "mproc/actors/pool_protocol.hpp"
#include "mproc/runtime/task.hpp"
#include "mproc/runtime/actor_registry.hpp"
#include "mproc/runtime/log.hpp"
#include "mproc/serialization/bytes.hpp"
#include "mproc/serialization/unpack.hpp"

namespace mproc::detail {

namespace {

// One chunk ([task, star, items]) in, its results out.
bytes run_chunk(const bytes& payload) {
  // Results take about as much room as their inputs; msgpack-c's default is 8 KiB.
  wire::buffer buf{std::clamp<std::size_t>(2 * payload.size(), 64, 1 << 20)};
  wire::packer pk{buf};
  auto fail_all = [&](std::uint32_t n, const std::string& why) {
    std::vector<std::pair<std::uint32_t, std::string>> failures;
    pk.pack_array(2);
    pk.pack_array(n);
    for (std::uint32_t i = 0; i < n; ++i) {
      pk.pack_nil();
      failures.emplace_back(i, why);
    }
    pack_failures(pk, failures);
  };
  try {
    auto handle = wire::unpack_bounded(payload.data(), payload.size());
    const auto& o = handle.get();
    if (o.type != msgpack::type::ARRAY || o.via.array.size != 3
        || o.via.array.ptr[2].type != msgpack::type::ARRAY)
      throw std::runtime_error("malformed chunk");
    auto name = o.via.array.ptr[0].as<std::string>();
    bool star = o.via.array.ptr[1].as<bool>();
    const auto& items = o.via.array.ptr[2];
    const auto* task = find_task(name);
    if (task && task->run)
      task->run(items, star, pk);
    else if (task)
      fail_all(items.via.array.size, "task '" + name + "' takes or returns values that "
                                       "cannot travel in a pool's chunks (handles)");
    else
      fail_all(items.via.array.size, "no task '" + name + "' in the worker: add MPROC_TASK");
  } catch (const std::exception& e) {
    buf.clear();
    fail_all(0, e.what());  // the item count is unknown: the pool reports a malformed result
  }
  return bytes(buf.data(), buf.data() + buf.size());
}

// The initializer is a chunk of one item, run like any other.
bool run_initializer(const bytes& chunk) {
  auto result = run_chunk(chunk);
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

struct worker_state {
  caf::actor dispatcher;
  std::uint32_t allowance = 0;  // chunks it may still take; maxtasksperchild
};

void pull(caf::event_based_actor* self, std::shared_ptr<worker_state> st,
          std::vector<bytes> results) {
  self->request(st->dispatcher, caf::infinite, pool_pull_atom::value, std::move(results),
                st->allowance)
    .then(
      [=](std::vector<bytes>& chunks) {
        if (chunks.empty()) {
          self->quit();
          return;
        }
        std::vector<bytes> out;
        out.reserve(chunks.size());
        for (const auto& c : chunks)
          out.push_back(run_chunk(c));
        st->allowance -= std::min<std::uint32_t>(st->allowance, static_cast<std::uint32_t>(chunks.size()));
        pull(self, st, std::move(out));
      },
      [=](caf::error&) { self->quit(); });  // the pool is gone
}

caf::behavior mproc_pool_worker(caf::event_based_actor* self, caf::actor dispatcher,
                                bytes initializer, std::uint32_t maxtasks) {
  auto st = std::make_shared<worker_state>();
  st->dispatcher = std::move(dispatcher);
  st->allowance = maxtasks == 0 ? std::numeric_limits<std::uint32_t>::max() : maxtasks;
  if (!initializer.empty() && !run_initializer(initializer)) {
    self->quit(caf::exit_reason::user_shutdown);  // the process exits with 1
    return {};
  }
  pull(self, st, {});
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
