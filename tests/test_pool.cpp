// Pool: every call kind of Python's Pool, task errors, and the promise Python breaks — a worker
// that dies mid-task never leaves a call waiting forever.
#include "mproc/actors/pool.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <limits>
#include <set>
#include <span>
#include <stdexcept>
#include <thread>

#include <catch2/catch.hpp>

#include "mproc/actors/lock.hpp"
#include "mproc/runtime/node.hpp"
#include "pool_tasks.hpp"
#include "support.hpp"

using namespace std::chrono_literals;
using mproc::errc;
using test::code_of;

namespace {

std::int64_t add(std::int64_t a, std::int64_t b) {
  return a + b;
}

std::int64_t fails_on_odd(std::int64_t x) {
  if (x % 2 != 0)
    throw std::invalid_argument("odd input " + std::to_string(x));
  return x;
}

std::int64_t aborts_on_13(std::int64_t x) {
  if (x == 13)
    std::abort();
  return x;
}

void nothing(std::int32_t) {}

std::string mebibytes_of_text(std::int32_t n) {
  return std::string(static_cast<std::size_t>(n) << 20, 'm');
}

std::int64_t length_of(const std::string& s) {
  return static_cast<std::int64_t>(s.size());
}

std::int32_t unregistered(std::int32_t x) {
  return x;
}

bool locked(mproc::lock l) {
  return l.locked();
}

mproc::lock new_lock(std::int32_t) {
  return mproc::lock{};
}

// Item 0 waits (10 s at most) until every other item ran: each appends a byte to `path`.
bool waits_for_the_rest(std::string path, std::int32_t item, std::int32_t items) {
  if (item != 0) {
    int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
    bool wrote = fd >= 0 && ::write(fd, "x", 1) == 1;
    if (fd >= 0)
      ::close(fd);
    return wrote;
  }
  return test::eventually(10s, [&] {
    struct stat st{};
    return ::stat(path.c_str(), &st) == 0 && st.st_size == items - 1;
  });
}

} // namespace

MPROC_TASK(waits_for_the_rest);
MPROC_TASK(add);
MPROC_TASK(locked);
MPROC_TASK(new_lock);
MPROC_TASK(fails_on_odd);
MPROC_TASK(aborts_on_13);
MPROC_TASK(nothing);
MPROC_TASK(mebibytes_of_text);
MPROC_TASK(length_of);

TEST_CASE("map returns every result in input order, whatever the chunk size") {
  test::scoped_node node;
  mproc::pool pool{*node, {.processes = 2}};
  auto xs = iota(1000);
  CHECK(pool.map(square, xs) == squares_of(xs));
  CHECK(pool.map(square, xs, 1) == squares_of(xs));
  CHECK(pool.map(square, xs, 333) == squares_of(xs));
  CHECK(pool.map(square, std::span<const std::int64_t>{xs}, 7) == squares_of(xs));
  auto async = pool.map_async(square, std::span<const std::int64_t>{xs});
  CHECK(async.get() == squares_of(xs));
  CHECK(async.get() == squares_of(xs));  // an async result can be read again
  CHECK(pool.map(square, std::vector<std::int64_t>{}).empty());
  CHECK(pool.map(square, std::vector<std::int64_t>{1, 2, 3}) == std::vector<std::int64_t>{1, 4, 9});
}

TEST_CASE("a chunk size larger than the inputs runs them as one chunk, up to SIZE_MAX") {
  test::scoped_node node;
  mproc::pool pool{*node, {.processes = 1}};
  auto xs = iota(10);
  auto huge = std::numeric_limits<std::size_t>::max();
  CHECK(pool.map(square, xs, huge) == squares_of(xs));
  CHECK(pool.map(square, xs, huge - 3) == squares_of(xs));
  std::vector<std::int64_t> streamed;
  for (auto x : pool.imap(square, xs, huge))
    streamed.push_back(x);
  CHECK(streamed == squares_of(xs));
}

TEST_CASE("the default chunk size is Python's quarter share per worker, capped") {
  using mproc::detail::default_chunksize;
  CHECK(default_chunksize(0, 2) == 1);
  CHECK(default_chunksize(100, 2) == 13);       // ceil(100 / 8)
  CHECK(default_chunksize(100, 0) == 25);       // no processes counts as one
  CHECK(default_chunksize(1'000'000, 2) == mproc::detail::default_chunk_cap);
  // Large items: as many as fill the chunk's bytes, at least one.
  CHECK(default_chunksize(1'000'000, 2, 10'000, 5'000'000) == 500);
  CHECK(default_chunksize(1'000'000, 2, 10'000'000, 5'000'000) == 1);
  CHECK(default_chunksize(100, 2, 10'000, 5'000'000) == 13);  // the quarter share is smaller
  // A map with the default size still covers an input of several capped chunks whole.
  test::scoped_node node;
  mproc::pool pool{*node, {.processes = 2}};
  auto xs = iota(9 * mproc::detail::default_chunk_cap + 5);  // past 8 groups of the cap
  CHECK(pool.map(square, xs) == squares_of(xs));
}

TEST_CASE("the default chunk size keeps a chunk of large items within one message") {
  // 64 K items of 200 bytes: 8 K of them (the item cap) are 1.6 MB, past the 1 MiB messages
  // of this node. The default must cut smaller chunks instead of failing every item.
  test::scoped_node node{{.max_frame = 1u << 20}};
  mproc::pool pool{*node, {.processes = 2}};
  std::vector<std::string> texts(64 * 1024, std::string(200, 't'));
  auto lengths = pool.map(length_of, texts);
  CHECK(lengths == std::vector<std::int64_t>(texts.size(), 200));
}

TEST_CASE("a large map streams through the pool and comes back whole") {
  test::scoped_node node;
  mproc::pool pool{*node, {.processes = 2}};
  auto xs = iota(300'000);
  CHECK(pool.map(square, xs, 7) == squares_of(xs));
}

TEST_CASE("jobs whose chunks come back in one pull each get their own results") {
  test::scoped_node node;
  mproc::pool pool{*node, {.processes = 1}};
  // A pull takes one task's chunks, several once the task's pace is known: measured here.
  CHECK(pool.map(square, iota(1000), 1) == squares_of(iota(1000)));
  // While the one worker sleeps, two maps of that task queue up: its next pull takes a
  // share of both (the first's 3 chunks, then the second's), one batch of results to split.
  auto busy = pool.apply_async(slow_pid, 200);
  auto few = pool.map_async(square, iota(3), 1);
  auto later = iota(100);
  for (auto& x : later)
    x += 1000;
  auto many = pool.map_async(square, later, 1);
  CHECK(few.get(10s) == squares_of(iota(3)));
  CHECK(many.get(10s) == squares_of(later));
  busy.get(10s);
}

TEST_CASE("starmap unpacks argument tuples") {
  test::scoped_node node;
  mproc::pool pool{*node, {.processes = 2}};
  std::vector<std::tuple<std::int64_t, std::int64_t>> pairs{{1, 2}, {3, 4}, {5, 6}};
  CHECK(pool.starmap(add, pairs) == std::vector<std::int64_t>{3, 7, 11});
  CHECK(pool.starmap_async(add, pairs, 1).get(10s) == std::vector<std::int64_t>{3, 7, 11});
}

TEST_CASE("imap yields results in input order, imap_unordered yields every result") {
  test::scoped_node node;
  mproc::pool pool{*node, {.processes = 2}};
  auto xs = iota(200);
  std::vector<std::int64_t> ordered;
  for (auto r : pool.imap(square, xs, 3))
    ordered.push_back(r);
  CHECK(ordered == squares_of(xs));

  std::multiset<std::int64_t> unordered;
  auto stream = pool.imap_unordered(square, xs, 5);
  while (auto r = stream.next(10s))
    unordered.insert(*r);
  auto expected = squares_of(xs);
  CHECK(unordered == std::multiset<std::int64_t>(expected.begin(), expected.end()));
}

TEST_CASE("threads sharing one imap stream get every result once between them") {
  test::scoped_node node;
  mproc::pool pool{*node, {.processes = 2}};
  auto xs = iota(200'000);
  auto stream = pool.imap(square, xs, 100);
  std::vector<std::int64_t> got[2];
  auto drain = [&](std::vector<std::int64_t>& out) {
    while (auto r = stream.next(30s))
      out.push_back(*r);
  };
  std::thread other{drain, std::ref(got[1])};
  drain(got[0]);
  other.join();
  got[0].insert(got[0].end(), got[1].begin(), got[1].end());
  std::sort(got[0].begin(), got[0].end());
  CHECK(got[0] == squares_of(xs));
}

TEST_CASE("imap_unordered names a failed item by its place in the input") {
  test::scoped_node node;
  mproc::pool pool{*node, {.processes = 2}};
  std::vector<std::int64_t> xs{0, 2, 4, 7, 8};
  std::string what;
  for (auto stream = pool.imap_unordered(fails_on_odd, xs, 2);;) {
    try {
      if (!stream.next())
        break;
    } catch (const mproc::error& e) {
      what = e.what();
    }
  }
  CHECK_THAT(what, Catch::Contains("item 3") && Catch::Contains("odd input 7"));
}

TEST_CASE("a long task does not hold back the tasks after it while another worker is idle") {
  test::scoped_node node;
  mproc::pool pool{*node, {.processes = 2}};
  char path[] = "/tmp/mproc-pool-pace-XXXXXX";
  int fd = ::mkstemp(path);
  REQUIRE(fd >= 0);
  ::close(fd);
  // As Python's chunksize 1: the worker running item 0 must not hold items 1.. in a batch
  // of its own (item 0 would wait for them in vain) while the other worker runs out.
  constexpr std::int32_t items = 20;
  std::vector<std::tuple<std::string, std::int32_t, std::int32_t>> args;
  for (std::int32_t i = 0; i < items; ++i)
    args.emplace_back(path, i, items);
  CHECK(pool.starmap(waits_for_the_rest, args, 1) == std::vector<bool>(items, true));
  ::unlink(path);
}

TEST_CASE("imap hands out the first result before the last one is computed") {
  test::scoped_node node;
  mproc::pool pool{*node, {.processes = 2}};
  auto stream = pool.imap(slow_pid, std::vector<std::int32_t>{0, 0, 3000});
  auto first = stream.next(2s);  // the 3 s item is still running
  REQUIRE(first);
  CHECK(*first > 0);
  pool.terminate();
}

TEST_CASE("apply blocks for the result; apply_async reports through its handle") {
  test::scoped_node node;
  mproc::pool pool{*node, {.processes = 2}};
  CHECK(pool.apply(square, std::int64_t{12}) == 144);
  CHECK(pool.apply(add, 40, 2) == 42);

  auto r = pool.apply_async(square, std::int64_t{7});
  REQUIRE(r.wait(10s));
  CHECK(r.ready());
  CHECK(r.successful());
  CHECK(r.get() == 49);
  CHECK(r.get(1s) == 49);  // get() can be asked again

  auto v = pool.apply_async(nothing, 1);
  v.get(10s);
  CHECK(v.successful());
  std::size_t done = 0;
  for ([[maybe_unused]] auto r : pool.imap(nothing, std::vector<std::int32_t>(5, 0)))
    ++done;  // a void task yields std::monostate per item
  CHECK(done == 5);
}

TEST_CASE("callbacks run once the result is ready, the error callback on failure") {
  test::scoped_node node;
  mproc::pool pool{*node, {.processes = 2}};
  std::atomic<std::int64_t> got{0};
  std::atomic<bool> failed{false};
  std::atomic<errc> code{errc::none};
  pool.apply_async(square, std::int64_t{9}).then([&](const std::int64_t& x) { got = x; });
  pool.map_async(fails_on_odd, std::vector<std::int64_t>{2, 3})
    .then([&](const std::vector<std::int64_t>&) {},
          [&](const mproc::error& e) {
            code = e.code();
            failed = true;
          });
  CHECK(test::eventually(10s, [&] { return got == 81 && failed; }));
  CHECK(code == errc::task_failed);

  auto done = pool.apply_async(square, std::int64_t{3});
  done.wait();
  std::int64_t late = 0;
  done.then([&](const std::int64_t& x) { late = x; });  // already ready: runs at once
  CHECK(late == 9);
}

TEST_CASE("a callback that throws on the pool's thread is reported; the pool serves on") {
  test::scoped_node node;
  mproc::pool pool{*node, {.processes = 2}};
  std::atomic<int> ran{0};
  auto slow = pool.apply_async(slow_pid, 300);  // not ready when then() registers
  slow.then([&](const std::int32_t&) {
    ++ran;
    throw std::runtime_error("callback failed");
  });
  slow.then([&](const std::int32_t&) { ++ran; });  // the next callback still runs
  CHECK(test::eventually(10s, [&] { return ran == 2; }));
  CHECK(pool.map(square, iota(100)) == squares_of(iota(100)));
}

TEST_CASE("a callback's own mproc::error is not the task's: the error callback does not run") {
  test::scoped_node node;
  mproc::pool pool{*node, {.processes = 2}};
  std::atomic<int> callbacks{0}, error_callbacks{0};
  auto throws_mproc_error = [&](const std::int32_t&) {
    ++callbacks;
    throw mproc::error(mproc::make_error(errc::timeout, "the callback's own"), "the callback's own");
  };
  auto count_error = [&](const mproc::error&) { ++error_callbacks; };
  auto slow = pool.apply_async(slow_pid, 300);
  slow.then(throws_mproc_error, count_error);  // runs on the pool's thread: logged
  CHECK(test::eventually(10s, [&] { return callbacks == 1; }));
  slow.wait();
  // Already ready: both run at once on this thread, and the callback's error reaches it.
  CHECK(code_of([&] { slow.then(throws_mproc_error, count_error); }) == errc::timeout);
  CHECK(callbacks == 2);
  CHECK(error_callbacks == 0);
}

TEST_CASE("a task that throws fails with its exception's type and message; the worker lives on") {
  test::scoped_node node;
  mproc::pool pool{*node, {.processes = 2}};
  auto before = pool.map(slow_pid, std::vector<std::int32_t>{50, 50, 50, 50}, 1);

  std::string what;
  try {
    pool.map(fails_on_odd, std::vector<std::int64_t>{0, 2, 5, 6});
  } catch (const mproc::error& e) {
    what = e.what();
    CHECK(e.code() == errc::task_failed);
  }
  CHECK_THAT(what, Catch::Contains("fails_on_odd(item 2)"));
  CHECK_THAT(what, Catch::Contains("std::invalid_argument: odd input 5"));

  auto r = pool.apply_async(fails_on_odd, std::int64_t{1});
  r.wait(10s);
  CHECK_THROWS_AS(pool.apply_async(slow_pid, 500).successful(), std::logic_error);  // not ready
  CHECK(r.ready());
  CHECK_FALSE(r.successful());
  CHECK(code_of([&] { r.get(); }) == errc::task_failed);

  // The same worker processes go on serving.
  auto after = pool.map(slow_pid, std::vector<std::int32_t>{50, 50, 50, 50}, 1);
  std::set<std::int32_t> old_pids(before.begin(), before.end());
  for (auto pid : after)
    CHECK(old_pids.count(pid) == 1);
}

// A container that counts the items read from it after its owner said it is gone.
class watched_inputs {
public:
  using value_type = std::int64_t;
  class const_iterator {
  public:
    const_iterator(const watched_inputs* of, std::size_t at) : of_(of), at_(at) {}
    const std::int64_t& operator*() const {
      if (!of_->alive)
        ++of_->read_after_death;
      if (at_ == of_->unreadable)
        throw std::runtime_error("item " + std::to_string(at_) + " is unreadable");
      return of_->items[at_];
    }
    const_iterator& operator++() {
      ++at_;
      return *this;
    }
    bool operator==(const const_iterator&) const = default;

  private:
    const watched_inputs* of_;
    std::size_t at_;
  };
  explicit watched_inputs(std::vector<std::int64_t> xs) : items(std::move(xs)) {}
  const_iterator begin() const { return {this, 0}; }
  const_iterator end() const { return {this, items.size()}; }
  std::size_t size() const { return items.size(); }

  std::vector<std::int64_t> items;
  std::size_t unreadable = SIZE_MAX;  // reading it throws
  std::atomic<bool> alive{true};
  mutable std::atomic<int> read_after_death{0};
};

TEST_CASE("a blocking map that throws has stopped reading the caller's inputs") {
  test::scoped_node node;
  mproc::pool pool{*node, {.processes = 2}};
  // map() reads its inputs in place as workers take them: item 1 fails long before the
  // last of 200,000 one-item chunks is encoded.
  watched_inputs xs{iota(200'000)};
  CHECK(code_of([&] { pool.map(fails_on_odd, xs, 1); }) == errc::task_failed);
  xs.alive = false;
  // The dispatcher feeds jobs in order: once a later map is done, it has moved past the
  // first one.
  CHECK(pool.map(square, iota(100)) == squares_of(iota(100)));
  CHECK(xs.read_after_death == 0);
}

TEST_CASE("a map whose input throws while read fails with task_failed; the pool serves on") {
  test::scoped_node node;
  mproc::pool pool{*node, {.processes = 2}};
  watched_inputs xs{iota(100)};
  xs.unreadable = 55;  // read by the dispatcher, in chunk 5
  std::string what;
  try {
    pool.map(square, xs, 10);
  } catch (const mproc::error& e) {
    CHECK(e.code() == errc::task_failed);
    what = e.what();
  }
  CHECK_THAT(what, Catch::Contains("item 55 is unreadable"));
  CHECK(pool.map(square, iota(10)) == squares_of(iota(10)));
  // The default chunk size reads a few items first (their size): the same error then.
  watched_inputs first_bad{iota(100)};
  first_bad.unreadable = 0;
  CHECK(code_of([&] { pool.map(square, first_bad); }) == errc::task_failed);
}

TEST_CASE("a worker killed mid-map is replaced and the map still completes correctly") {
  test::scoped_node node;
  mproc::pool pool{*node, {.processes = 2}};
  auto xs = iota(100);  // 100 x 20 ms over 2 workers: about a second
  auto r = pool.map_async(slow_double, xs, 1);
  REQUIRE(test::eventually(10s, [&] { return worker_pids(*node).size() == 2; }));
  std::this_thread::sleep_for(200ms);
  auto victim = worker_pids(*node).front();
  REQUIRE(::kill(victim, SIGKILL) == 0);

  auto out = r.get(30s);
  REQUIRE(out.size() == xs.size());
  for (std::size_t i = 0; i < xs.size(); ++i)
    CHECK(out[i] == 2 * xs[i]);
  CHECK(test::eventually(10s, [&] {
    auto pids = worker_pids(*node);
    return pids.size() == 2 && std::find(pids.begin(), pids.end(), victim) == pids.end();
  }));
}

TEST_CASE("a task that keeps killing its worker fails after the retries, naming the death") {
  test::scoped_node node;
  mproc::pool pool{*node, {.processes = 2, .max_retries = 1}};
  auto good = pool.map_async(square, iota(50), 1);
  auto bad = pool.apply_async(aborts_on_13, std::int64_t{13});
  std::string what;
  try {
    bad.get(30s);
  } catch (const mproc::error& e) {
    what = e.what();
    CHECK(e.code() == errc::task_failed);
  }
  CHECK_THAT(what, Catch::Contains("SIGABRT"));
  CHECK_THAT(what, Catch::Contains("2 times"));
  CHECK(good.get(30s) == squares_of(iota(50)));
  CHECK(pool.apply(square, std::int64_t{5}) == 25);  // the pool still works
}

TEST_CASE("results that are not ready in time throw timeout and stay available") {
  test::scoped_node node;
  mproc::pool pool{*node, {.processes = 2}};
  auto r = pool.apply_async(slow_pid, 500);
  CHECK(code_of([&] { r.get(50ms); }) == errc::timeout);
  CHECK_FALSE(r.wait(10ms));
  CHECK(r.get(10s) > 0);

  auto stream = pool.imap(slow_pid, std::vector<std::int32_t>{500});
  CHECK(code_of([&] { stream.next(50ms); }) == errc::timeout);
  auto unordered = pool.imap_unordered(slow_pid, std::vector<std::int32_t>{500});
  CHECK(code_of([&] { unordered.next(50ms); }) == errc::timeout);
  CHECK(unordered.next(10s).value_or(0) > 0);  // still there once it comes
  CHECK_FALSE(unordered.next(10s).has_value());
}

TEST_CASE("a wait of milliseconds::max() or a century of hours waits for the result") {
  // In the nanoseconds of the standard waits both overflowed into the past: timeout at once.
  test::scoped_node node;
  mproc::pool pool{*node, {.processes = 1}};
  CHECK(pool.apply_async(slow_pid, 200).get(std::chrono::milliseconds::max()) > 0);
  CHECK(pool.apply_async(slow_pid, 200).wait(std::chrono::hours{24 * 365 * 300}));
  auto stream = pool.imap(slow_pid, std::vector<std::int32_t>{200});
  CHECK(stream.next(std::chrono::seconds::max()).value_or(0) > 0);
  pool.close();
  CHECK(pool.join(std::chrono::milliseconds::max()));
}

TEST_CASE("results too large for one message together cross in several; too large alone fail") {
  test::scoped_node node;  // max_frame 80 MiB: a message carries 79 MiB of results
  mproc::pool pool{*node, {.processes = 1}};
  // Queued behind a slow task, the four chunks go to the worker two per pull: 90 MiB of
  // results come back for each pair.
  auto worker = pool.apply(slow_pid, 0);
  auto first = pool.apply_async(slow_pid, 300);
  auto texts = pool.map(mebibytes_of_text, std::vector<std::int32_t>{45, 45, 45, 45}, 1);
  CHECK(first.get(10s) == worker);
  REQUIRE(texts.size() == 4);
  for (const auto& t : texts)
    CHECK(t.size() == std::size_t{45} << 20);
  CHECK(pool.apply(slow_pid, 0) == worker);  // the same worker: none died on the way
  std::string what;
  try {
    pool.apply(mebibytes_of_text, 85);
  } catch (const mproc::error& e) {
    CHECK(e.code() == errc::task_failed);
    what = e.what();
  }
  CHECK_THAT(what, Catch::Contains("more than a message carries"));
  CHECK(pool.apply(square, std::int64_t{4}) == 16);  // the worker lives on
}

TEST_CASE("inputs too large for one message go out in several; a chunk too large alone fails") {
  // Workers with the smallest max_frame (the pool's node has the default 80 MiB): 100 KB
  // items fill one of their messages quickly.
  test::scoped_env small_frames{"MPROC_TEST_MAX_FRAME", "1048576"};
  test::scoped_node node;
  mproc::pool pool{*node, {.processes = 1}};
  auto worker = pool.apply(slow_pid, 0);
  // Eight chunks of 500 KB: a pull used to take four at once (2 MB), an answer the link
  // refused; the worker took that for the pool's end and quit, and each chunk went again.
  std::vector<std::string> inputs(40, std::string(100'000, 'x'));
  auto lengths = pool.map(length_of, inputs, 5);
  CHECK(lengths == std::vector<std::int64_t>(40, 100'000));
  CHECK(pool.apply(slow_pid, 0) == worker);  // no worker died on the way
  std::string what;
  try {
    pool.map(length_of, inputs, 20);  // 2 MB chunks: none can ever reach a worker
  } catch (const mproc::error& e) {
    CHECK(e.code() == errc::task_failed);
    what = e.what();
  }
  CHECK_THAT(what, Catch::Contains("pass a smaller chunksize"));
  CHECK(pool.apply(slow_pid, 0) == worker);
}

TEST_CASE("a maxtasksperchild beyond 32 bits is refused, not wrapped to a small limit") {
  test::scoped_node node;
  std::size_t wraps_to_one = (std::size_t{1} << 32) + 1;
  CHECK(code_of([&] { mproc::pool{*node, {.processes = 1, .maxtasksperchild = wraps_to_one}}; })
        == errc::bad_arguments);
  CHECK(test::eventually(10s, [&] { return node->active_children().empty(); }));  // none started
  mproc::pool fine{*node, {.processes = 1, .maxtasksperchild = std::size_t{1} << 31}};
  CHECK(fine.apply(square, std::int64_t{3}) == 9);
}

TEST_CASE("a function that is not a registered task is refused with a clear error") {
  test::scoped_node node;
  mproc::pool pool{*node, {.processes = 1}};
  std::string what;
  try {
    pool.apply(unregistered, 1);
  } catch (const mproc::error& e) {
    what = e.what();
    CHECK(e.code() == errc::unknown_actor_name);
  }
  CHECK_THAT(what, Catch::Contains("MPROC_TASK"));
  CHECK(pool.apply(square, std::int64_t{3}) == 9);
}


TEST_CASE("a handle as a pool task's argument is refused at the call, not sent as nil") {
  test::scoped_node node;
  mproc::pool pool{*node, {.processes = 1}};
  mproc::lock l;
  CHECK(code_of([&] { pool.apply(locked, l); }) == errc::bad_arguments);
  CHECK(code_of([&] { pool.apply_async(locked, l); }) == errc::bad_arguments);
  std::vector<mproc::lock> locks(3);
  CHECK(code_of([&] { pool.map(locked, locks); }) == errc::bad_arguments);
  CHECK(code_of([&] {
    mproc::pool{*node, {.processes = 1, .initializer = mproc::bind_task(locked, l)}};
  }) == errc::bad_arguments);
  CHECK(pool.apply(square, std::int64_t{3}) == 9);  // the pool serves on
}

TEST_CASE("a task's result that cannot travel fails with the worker's reason") {
  // The worker packed nil in its place and called it a success: the caller was told the
  // result could not be decoded, or got an empty handle.
  test::scoped_node node;
  mproc::pool pool{*node, {.processes = 1}};
  std::string what;
  try {
    pool.apply(new_lock, 0);
  } catch (const mproc::error& e) {
    CHECK(e.code() == errc::task_failed);
    what = e.what();
  }
  CHECK_THAT(what, Catch::Contains("goes only to a process on this machine"));
  CHECK(pool.apply(square, std::int64_t{3}) == 9);
}
