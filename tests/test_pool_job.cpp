// A pool's job without workers: how the dispatcher settles chunks and the caller reads them
// (pool_job), how a worker's answer is checked (chunk_results), and what one pull takes
// (ready_chunks).
#include "mproc/actors/pool_job.hpp"

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include <catch2/catch.hpp>

#include "mproc/actors/pool_chunks.hpp"
#include "mproc/actors/pool_ready.hpp"
#include "mproc/serialization/codec.hpp"
#include "support.hpp"

using namespace std::chrono_literals;
using mproc::errc;

namespace {

// Settles chunks {index, items, results} of `job` as one pull's batch; the batch is returned
// to watch its lifetime.
std::weak_ptr<const mproc::detail::item_batch>
settle_batch(mproc::detail::pool_job& job,
             std::vector<std::tuple<std::size_t, std::uint32_t, const char*>> chunks) {
  auto batch = std::make_shared<mproc::detail::item_batch>();
  std::vector<mproc::detail::pool_job::ran_chunk> run;
  for (auto [index, items, results] : chunks) {
    run.push_back({index, items, static_cast<std::uint32_t>(batch->size())});
    batch->append(results);
  }
  std::weak_ptr<const mproc::detail::item_batch> watch = batch;
  job.settle(std::move(batch), std::move(run));
  return watch;
}

// A job of `task` with `n` chunks of one item each, encoded as a pool's would be.
std::shared_ptr<mproc::detail::pool_job> job_of(const std::string& task, std::size_t n) {
  auto job = std::make_shared<mproc::detail::pool_job>(n);
  job->task = task;
  job->set_source(mproc::detail::chunks_of<std::int64_t>(
    task, false, std::make_shared<const std::vector<std::int64_t>>(n, 7), 1));
  return job;
}

} // namespace

TEST_CASE("a pull takes one task's chunks: a short task's batch stops where another begins") {
  using namespace mproc::detail;
  ready_chunks ready{1u << 20};
  std::deque<std::shared_ptr<pool_job>> feeding{job_of("short", 2), job_of("unmeasured", 20)};
  ready.fill(feeding, 2);
  pool_pace pace;
  pace.measured("short", 1000, 1ms);  // 1 us an item: 2,000 items fit the budget
  std::deque<chunk_task> in_flight;
  auto first = ready.take(in_flight, 2, 1000, 1u << 20, pace);
  CHECK(first.size() == 2);  // the short task's two chunks, none of the next task's
  CHECK(in_flight.back().job->task == "short");
  auto second = ready.take(in_flight, 2, 1000, 1u << 20, pace);
  CHECK(second.size() == 1);  // a task not measured yet: one chunk, to learn its pace
  CHECK(in_flight.back().job->task == "unmeasured");
}

TEST_CASE("a job hands out each chunk's results as first settled, until released or failed") {
  // The dispatcher's side of a job (settle, settle_failed, fail) against the caller's
  // (chunk_result, release_chunk, next_finished), without workers.
  using mproc::detail::chunk_result;
  test::scoped_node node;  // a job's failure is rendered by the node's actor system
  mproc::detail::pool_job job{3};
  CHECK_THROWS(chunk_result(job, 0, 0ms));  // nothing yet: timeout
  auto settle = [&](std::size_t index, std::uint32_t items, const char* results) {
    settle_batch(job, {{index, items, results}});
  };
  settle(1, 2, "one");
  settle(1, 2, "again");  // a chunk is settled once: the first answer stays
  auto one = chunk_result(job, 1, 0ms);
  REQUIRE(one);
  CHECK(one->items == 2);
  CHECK(one->encoded == "one");
  CHECK(one->failure == nullptr);
  job.settle_failed(0, 4, "its worker died");
  auto zero = chunk_result(job, 0, 0ms);
  REQUIRE(zero);
  CHECK(zero->items == 4);
  REQUIRE(zero->failure != nullptr);
  CHECK(*zero->failure == "its worker died");
  CHECK(*mproc::detail::next_finished(job, std::nullopt) == 1);  // in the order they finished
  CHECK(*mproc::detail::next_finished(job, std::nullopt) == 0);
  mproc::detail::release_chunk(job, 1);
  CHECK(chunk_result(job, 1, 0ms)->encoded.empty());
  CHECK_FALSE(chunk_result(job, 3, 0ms));  // past the last chunk
  CHECK_FALSE(mproc::detail::job_ready(job));
  job.fail(mproc::make_error(errc::closed, "terminated"));
  settle(2, 1, "late");  // after the job failed: dropped
  CHECK(test::code_of([&] { chunk_result(job, 2, 0ms); }) == errc::closed);
  CHECK(test::code_of([&] { mproc::detail::next_finished(job, std::nullopt); })
        == errc::closed);  // not 2
  CHECK(mproc::detail::job_ready(job));

  mproc::detail::pool_job pair{2};  // a run of chunks settled at once, as a pull brings them
  int done_calls = 0;
  mproc::detail::job_on_done(pair, [&] { ++done_calls; });
  settle_batch(pair, {{1, 1, "b"}, {1, 1, "b again"}, {0, 1, "a"}});
  CHECK(mproc::detail::job_ready(pair));
  CHECK(done_calls == 1);
  auto a = chunk_result(pair, 0, 0ms);
  auto b = chunk_result(pair, 1, 0ms);
  REQUIRE(a);
  REQUIRE(b);
  CHECK(a->encoded == "a");
  CHECK(b->encoded == "b");
  CHECK(mproc::detail::next_finished(pair, std::nullopt) == std::optional<std::size_t>{1});
  CHECK(mproc::detail::next_finished(pair, std::nullopt) == std::optional<std::size_t>{0});
  CHECK_FALSE(mproc::detail::next_finished(pair, std::nullopt));  // each chunk counted once: none left
  settle_batch(pair, {{0, 1, "late"}});  // settled before: changes nothing
  CHECK(done_calls == 1);
  CHECK(chunk_result(pair, 0, 0ms)->encoded == "a");

  mproc::detail::pool_job empty{0};
  CHECK(mproc::detail::job_ready(empty));
  CHECK_FALSE(chunk_result(empty, 0, 0ms));
}

TEST_CASE("a pull's batch of results is freed once every chunk of the job in it is released") {
  test::scoped_node node;
  mproc::detail::pool_job job{4};
  auto first = settle_batch(job, {{0, 1, "a"}, {1, 1, "b"}});
  auto second = settle_batch(job, {{2, 1, "c"}, {3, 1, "d"}});
  auto again = settle_batch(job, {{0, 1, "a again"}});  // every chunk in it settled before
  CHECK(again.expired());
  mproc::detail::release_chunk(job, 0);
  mproc::detail::release_chunk(job, 0);  // twice counts once
  CHECK_FALSE(first.expired());
  CHECK(mproc::detail::chunk_result(job, 1, 0ms)->encoded == "b");
  mproc::detail::release_chunk(job, 1);
  CHECK(first.expired());
  CHECK_FALSE(second.expired());
  CHECK(mproc::detail::chunk_result(job, 2, 0ms)->encoded == "c");
}

TEST_CASE("a malformed answer from a worker fails the items of its chunk, nothing else") {
  auto encode = [](auto&& pack) {
    mproc::wire::buffer buf;
    mproc::wire::packer pk{buf};
    pack(pk);
    return std::string(buf.data(), buf.size());
  };
  auto good = encode([](auto& pk) {
    pk.pack_array(2);
    pk.pack_array(2);
    pk.pack(std::int64_t{4});
    pk.pack_nil();
    pk.pack_map(1);
    pk.pack(1);
    pk.pack(std::string{"boom"});
  });
  mproc::detail::chunk_results ok{{2, good}};
  CHECK(ok.ok(0));
  CHECK(ok.value(0).as<std::int64_t>() == 4);
  CHECK_FALSE(ok.ok(1));
  CHECK(ok.error(1) == "boom");

  auto wrong_count = mproc::detail::chunk_results{{3, good}};
  auto truncated = mproc::detail::chunk_results{{2, std::string_view{good}.substr(0, good.size() - 3)}};
  auto out_of_range = encode([](auto& pk) {
    pk.pack_array(2);
    pk.pack_array(2);
    pk.pack_nil();
    pk.pack_nil();
    pk.pack_map(1);
    pk.pack(7);
    pk.pack(std::string{"x"});
  });
  auto index_out_of_range = mproc::detail::chunk_results{{2, out_of_range}};
  // [[[[...]]], {}]: a result value 50,000 arrays deep is refused at unpack time.
  std::string deep = "\x92" + std::string(50000, '\x91') + "\xc0\x80";
  auto too_deep = mproc::detail::chunk_results{{1, deep}};
  for (auto* bad : {&wrong_count, &truncated, &index_out_of_range, &too_deep}) {
    CHECK_FALSE(bad->ok(0));
    CHECK(bad->error(0) == "the worker sent a malformed result");
  }
  std::string why = "its worker died";
  mproc::detail::chunk_results died{{2, {}, &why}};
  CHECK(died.size() == 2);
  CHECK(died.error(1) == "its worker died");
}

