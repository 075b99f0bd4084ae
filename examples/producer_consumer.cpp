// The seeds' producer-consumer program in mproc: P producer processes each put N items
// (i, producer_id) into one queue; C consumer processes take until each gets a sentinel
// (Python's None; here an empty optional). Then a summary, and an accounting computed from
// what the consumers actually processed:
//
//   produced=<P*N> consumed=<distinct pairs> lost=<missing pairs> duplicates=<extra deliveries>
//
// Options: --producers P --consumers C --items N --maxsize M (0: unbounded)
//          --kill-every MS (SIGKILL a random consumer every MS ms; it is restarted)
// The exit status is 1 if anything was lost.
//
// Unlike the seed, consumers take items with get_many(): a batch is acknowledged only when
// the next one is asked for, and each consumer reports a batch before asking, so the root
// learns of every processed item before the queue forgets it — even when the consumer is
// killed right after.
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include <caf/blocking_actor.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/stateful_actor.hpp>

#include "actors/queue.hpp"
#include "runtime/actor_registry.hpp"
#include "runtime/message_types.hpp"
#include "runtime/node.hpp"

using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

using item = std::pair<std::int32_t, std::int32_t>;  // (i, producer_id), as in the seed
using slot = std::optional<item>;                     // nullopt: the sentinel
using item_queue = mproc::queue<slot>;

// What a process says when it is done.
struct report {
  std::string role;
  std::int32_t id = 0;
  std::int64_t count = 0;
  double seconds = 0;
  MSGPACK_DEFINE(role, id, count, seconds);
};

MPROC_MESSAGE(report);
MPROC_MESSAGE(std::vector<report>);
MPROC_MESSAGE(std::vector<item>);

using report_atom = caf::atom_constant<caf::atom("report")>;
using summary_atom = caf::atom_constant<caf::atom("summary")>;

namespace {

double seconds_since(clock_type::time_point t) {
  return std::chrono::duration<double>(clock_type::now() - t).count();
}

// ---- the processes ---------------------------------------------------------------------

void producer(caf::blocking_actor* self, std::int32_t id, std::int32_t n, item_queue q,
              caf::actor tally) {
  auto t1 = clock_type::now();
  std::printf("producer start %d\n", id);
  for (std::int32_t i = 0; i < n; ++i)
    q.put(item{i, id});
  q.flush(1h);  // delivered, not just buffered
  auto secs = seconds_since(t1);
  std::printf("producer exit %d\nproducer %d, use_time: %.4f\n", id, id, secs);
  self->send(tally, report_atom::value, report{"producer", id, n, secs});
}

void consumer(caf::blocking_actor* self, std::int32_t id, item_queue q, caf::actor tally) {
  auto t1 = clock_type::now();
  std::printf("consumer start %d\n", id);
  std::int64_t count = 0;
  for (;;) {
    auto batch = q.get_many(256);
    std::vector<item> handled;
    handled.reserve(batch.size());
    int sentinels = 0;
    for (auto& s : batch) {
      if (s)
        handled.push_back(*s);
      else
        ++sentinels;
    }
    if (!handled.empty()) {  // reported before the next get_many acknowledges them
      count += static_cast<std::int64_t>(handled.size());
      self->send(tally, id, std::move(handled));
    }
    if (sentinels > 0) {
      for (int extra = 1; extra < sentinels; ++extra)  // each consumer needs its own
        q.put(std::nullopt);
      break;
    }
  }
  auto secs = seconds_since(t1);
  std::printf("consumer exit %d\nconsumer %d, use time: %.4f\n", id, id, secs);
  self->send(tally, report_atom::value, report{"consumer", id, count, secs});
}

// ---- the tally (in the root) -----------------------------------------------------------

struct tally_state {
  std::int32_t items = 0;
  std::vector<std::uint16_t> seen;  // deliveries per (producer, i)
  std::int64_t deliveries = 0;
  std::int64_t distinct = 0;
  std::map<std::int32_t, std::int64_t> consumed_by;
  std::vector<report> reports;
};

caf::behavior tally(caf::stateful_actor<tally_state>* self, std::int32_t producers,
                    std::int32_t items) {
  auto& s = self->state;
  s.items = items;
  s.seen.assign(static_cast<std::size_t>(producers) * static_cast<std::size_t>(items), 0);
  return {
    [=](std::int32_t consumer, const std::vector<item>& handled) {
      auto& s = self->state;
      for (auto [i, p] : handled) {
        auto k = static_cast<std::size_t>(p) * static_cast<std::size_t>(s.items)
                 + static_cast<std::size_t>(i);
        if (k >= s.seen.size())
          continue;  // not an item anyone produced
        if (s.seen[k]++ == 0)
          ++s.distinct;
      }
      s.deliveries += static_cast<std::int64_t>(handled.size());
      s.consumed_by[consumer] += static_cast<std::int64_t>(handled.size());
    },
    [=](report_atom, const report& r) { self->state.reports.push_back(r); },
    [=](caf::get_atom) { return caf::make_message(self->state.distinct, self->state.deliveries); },
    // Reports in (role, id) order; a consumer's count covers all its runs (a killed run
    // reports nothing itself, but its batches were counted as they came).
    [=](summary_atom) {
      auto out = self->state.reports;
      for (auto& r : out)
        if (r.role == "consumer")
          r.count = self->state.consumed_by[r.id];
      auto key = [](const report& r) { return std::make_tuple(r.role != "producer", r.id); };
      std::sort(out.begin(), out.end(),
                [&](const report& a, const report& b) { return key(a) < key(b); });
      return out;
    },
  };
}

} // namespace

MPROC_ACTOR(producer);
MPROC_ACTOR(consumer);
MPROC_ACTOR(tally);

namespace {

struct options {
  std::int32_t producers = 5;
  std::int32_t consumers = 5;
  std::int32_t items = 1000;
  std::size_t maxsize = 0;
  int kill_every_ms = 0;
};

[[noreturn]] void usage(const char* why) {
  std::fprintf(stderr,
               "producer_consumer: %s\n"
               "usage: producer_consumer [--producers P] [--consumers C] [--items N]\n"
               "                         [--maxsize M] [--kill-every MS]\n",
               why);
  std::exit(2);
}

long number(const char* flag, const char* text, long min, long max) {
  char* end = nullptr;
  long v = std::strtol(text, &end, 10);
  if (end == text || *end != '\0' || v < min || v > max)
    usage((std::string{flag} + " needs a number from " + std::to_string(min) + " to "
           + std::to_string(max))
            .c_str());
  return v;
}

options parse(int argc, char** argv) {
  options o;
  for (int i = 1; i < argc; ++i) {
    std::string flag = argv[i];
    if (i + 1 >= argc)
      usage(("missing value after " + flag).c_str());
    const char* v = argv[++i];
    if (flag == "--producers")
      o.producers = static_cast<std::int32_t>(number("--producers", v, 1, 1000));
    else if (flag == "--consumers")
      o.consumers = static_cast<std::int32_t>(number("--consumers", v, 1, 1000));
    else if (flag == "--items")
      o.items = static_cast<std::int32_t>(number("--items", v, 0, 100'000'000));
    else if (flag == "--maxsize")
      o.maxsize = static_cast<std::size_t>(number("--maxsize", v, 0, 100'000'000));
    else if (flag == "--kill-every")
      o.kill_every_ms = static_cast<int>(number("--kill-every", v, 1, 3'600'000));
    else
      usage(("unknown option " + flag).c_str());
  }
  return o;
}

// The consumer processes, restarted when killed, until each has ended normally.
class consumer_slots {
public:
  consumer_slots(mproc::node& node, const options& o, item_queue& q, caf::actor tally)
    : node_(node), q_(q), tally_(std::move(tally)), restarts_(o.consumers, 0) {
    for (std::int32_t id = 0; id < o.consumers; ++id)
      procs_.push_back(start(id));
  }

  // SIGKILL one consumer still running, chosen at random.
  void kill_one(std::mt19937& rng) {
    std::lock_guard guard{mtx_};
    std::vector<std::size_t> live;
    for (std::size_t i = 0; i < procs_.size(); ++i)
      if (procs_[i].is_alive())
        live.push_back(i);
    if (!live.empty())
      procs_[live[rng() % live.size()]].kill();
  }

  // Restarts killed consumers; true once every consumer ended normally.
  bool tend() {
    std::lock_guard guard{mtx_};
    bool all_done = true;
    for (std::size_t i = 0; i < procs_.size(); ++i) {
      auto code = procs_[i].exitcode();
      if (!code) {
        all_done = false;
      } else if (*code != 0) {
        ++restarts_[i];
        procs_[i] = start(static_cast<std::int32_t>(i));
        all_done = false;
      }
    }
    return all_done;
  }

  int restarts(std::size_t i) const { return restarts_[i]; }

private:
  mproc::process start(std::int32_t id) {
    return node_.spawn_process("consumer", {.name = "consumer-" + std::to_string(id)}, id, q_,
                               tally_);
  }

  mproc::node& node_;
  item_queue& q_;
  caf::actor tally_;
  std::mutex mtx_;
  std::vector<mproc::process> procs_;
  std::vector<int> restarts_;
};

// A progress line, on a terminal only, for runs longer than a second.
class progress {
public:
  progress(mproc::node& node, caf::actor tally, std::int64_t total)
    : node_(node), tally_(std::move(tally)), total_(total), start_(clock_type::now()) {
    if (::isatty(STDOUT_FILENO))
      thread_ = std::thread{[this] { run(); }};
  }
  ~progress() {
    stop_ = true;
    if (thread_.joinable()) {
      thread_.join();
      if (shown_)
        std::printf("\n");
    }
  }

private:
  void run() {
    while (!stop_) {
      std::this_thread::sleep_for(200ms);
      auto secs = seconds_since(start_);
      if (secs < 1.0 || stop_)
        continue;
      auto m = node_.request_message(tally_, caf::make_message(caf::get_atom::value), 5s);
      auto done = m.get_as<std::int64_t>(0);
      std::printf("\rconsumed %lld/%lld  %.0f items/s   ", static_cast<long long>(done),
                  static_cast<long long>(total_), static_cast<double>(done) / secs);
      std::fflush(stdout);
      shown_ = true;
    }
  }

  mproc::node& node_;
  caf::actor tally_;
  std::int64_t total_;
  clock_type::time_point start_;
  std::atomic<bool> stop_{false};
  bool shown_ = false;
  std::thread thread_;
};

void print_summary(mproc::node& node, const caf::actor& tally, const options& o,
                   const consumer_slots& slots, double total_secs) {
  auto reports = node.request<std::vector<report>>(tally, 10s, summary_atom::value);
  auto counts = node.request_message(tally, caf::make_message(caf::get_atom::value), 10s);
  auto distinct = counts.get_as<std::int64_t>(0);
  auto deliveries = counts.get_as<std::int64_t>(1);
  std::int64_t produced = static_cast<std::int64_t>(o.producers) * o.items;
  std::printf("\nsummary\n");
  for (const auto& r : reports) {
    std::printf("  %s %d: %lld items, %.4f s", r.role.c_str(), r.id,
                static_cast<long long>(r.count), r.seconds);
    auto killed = r.role == "consumer" ? slots.restarts(static_cast<std::size_t>(r.id)) : 0;
    if (killed > 0)
      std::printf(" (killed %d times; the time is its last run's)", killed);
    std::printf("\n");
  }
  std::printf("  total: %lld items in %.3f s = %.0f items/s\n", static_cast<long long>(produced),
              total_secs, static_cast<double>(produced) / total_secs);
  std::printf("produced=%lld consumed=%lld lost=%lld duplicates=%lld\n",
              static_cast<long long>(produced), static_cast<long long>(distinct),
              static_cast<long long>(produced - distinct),
              static_cast<long long>(deliveries - distinct));
}

} // namespace

int main(int argc, char** argv) {
  mproc::node node{argc, argv};
  auto o = parse(argc, argv);
  auto t0 = clock_type::now();

  item_queue q{node, {.maxsize = o.maxsize}};
  auto tally_actor = node.spawn("tally", o.producers, o.items);
  std::vector<mproc::process> producers;
  for (std::int32_t id = 0; id < o.producers; ++id)
    producers.push_back(node.spawn_process(
      "producer", {.name = "producer-" + std::to_string(id)}, id, o.items, q, tally_actor));
  consumer_slots consumers{node, o, q, tally_actor};

  std::atomic<bool> finished{false};
  std::thread killer;
  if (o.kill_every_ms > 0)
    killer = std::thread{[&] {
      std::mt19937 rng{42};
      while (!finished) {
        std::this_thread::sleep_for(std::chrono::milliseconds{o.kill_every_ms});
        if (!finished)
          consumers.kill_one(rng);
      }
    }};

  std::int64_t total = static_cast<std::int64_t>(o.producers) * o.items;
  double secs = 0;
  {
    progress line{node, tally_actor, total};
    for (auto& p : producers)
      p.join();
    for (std::int32_t i = 0; i < o.consumers; ++i)
      q.put(std::nullopt);
    while (!consumers.tend())
      std::this_thread::sleep_for(2ms);
    secs = seconds_since(t0);
  }
  finished = true;
  if (killer.joinable())
    killer.join();
  std::printf("all done finish\n");

  print_summary(node, tally_actor, o, consumers, secs);
  auto counts = node.request_message(tally_actor, caf::make_message(caf::get_atom::value), 10s);
  caf::anon_send_exit(tally_actor, caf::exit_reason::user_shutdown);
  return counts.get_as<std::int64_t>(0) == total ? 0 : 1;
}
