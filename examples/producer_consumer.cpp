// The seeds' producer-consumer program in mproc: P producer processes each put N items
// (i, producer_id) into one queue; C consumer processes take until the queue is closed and
// drained. Then a summary, and an accounting computed from what actually happened:
//
//   produced=<items the queue accepted> consumed=<distinct items processed>
//   lost=<accepted, never processed> duplicates=<extra deliveries> redelivered=<by the queue>
//
// Options: --producers P --consumers C --items N --maxsize M (0: unbounded)
//          --kill-every MS (SIGKILL a random process every MS ms)
//          --kill consumers|producers|any (which ones; consumers by default)
//          --max-restarts R (consumer restarts allowed within a second, OTP's intensity;
//          1000 by default; more and the consumers' supervisor gives up: the run fails)
// The exit status is 1 if anything accepted was lost.
//
// Faults are part of the program, as they are of real ones:
// - consumers run under a supervisor (one_for_one, transient): one that is killed, or
//   fails to start, is replaced at once, so consumption goes on during production and a
//   bounded queue never stalls;
// - a producer that is killed is not restarted (it would put its items again): what the
//   queue accepted from it is consumed, and the summary says how far it got;
// - the end is the queue's close() once every producer ended, not a sentinel per consumer:
//   a sentinel is an item like any other, and a consumer killed holding one would take it
//   to its grave or see it twice.
// Unlike the seed, consumers take items with get_many(): a batch is acknowledged only when
// the next one is asked for, and each consumer reports a batch before asking, so the root
// learns of every processed item before the queue forgets it — even when the consumer is
// killed right after.
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include <caf/blocking_actor.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/stateful_actor.hpp>

#include <mproc/actors/queue.hpp>
#include <mproc/runtime/actor_registry.hpp>
#include <mproc/runtime/message_types.hpp>
#include <mproc/runtime/node.hpp>
#include <mproc/runtime/supervisor.hpp>

using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

using item = std::pair<std::int32_t, std::int32_t>;  // (i, producer_id), as in the seed
using item_queue = mproc::queue<item>;

// What a process says when it is done.
struct report {
  std::string role;
  std::int32_t id = 0;
  std::int64_t count = 0;
  double seconds = 0;
  MSGPACK_DEFINE(role, id, count, seconds);
};

// What the tally knows at the end.
struct tally_summary {
  std::int64_t distinct = 0;                 // items processed at least once
  std::int64_t deliveries = 0;               // items processed, counting repeats
  std::vector<std::int64_t> by_producer;     // distinct items of each producer
  std::vector<std::int64_t> by_consumer;     // items processed by each consumer, all runs
  std::vector<report> reports;               // as sent; a killed run sends none
  std::int32_t consumers_finished = 0;       // distinct consumers that saw the queue end
  MSGPACK_DEFINE(distinct, deliveries, by_producer, by_consumer, reports, consumers_finished);
};

MPROC_MESSAGE(report);
MPROC_MESSAGE(tally_summary);
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
    std::vector<item> batch;
    try {
      batch = q.get_many(256);
    } catch (const mproc::error& e) {
      if (e.code() != mproc::errc::closed)
        throw;
      break;  // closed and drained: every item is taken
    }
    count += static_cast<std::int64_t>(batch.size());
    self->send(tally, id, std::move(batch));  // reported before the next get acknowledges it
  }
  auto secs = seconds_since(t1);
  std::printf("consumer exit %d\nconsumer %d, use time: %.4f\n", id, id, secs);
  self->send(tally, report_atom::value, report{"consumer", id, count, secs});
}

// ---- the tally (in the root) -----------------------------------------------------------

struct tally_state {
  std::int32_t items = 0;
  std::vector<std::uint16_t> seen;  // deliveries per (producer, i)
  tally_summary sum;
  std::set<std::int32_t> finished;  // consumers that reported their end
};

caf::behavior tally(caf::stateful_actor<tally_state>* self, std::int32_t producers,
                    std::int32_t consumers, std::int32_t items) {
  auto& s = self->state;
  s.items = items;
  s.seen.assign(static_cast<std::size_t>(producers) * static_cast<std::size_t>(items), 0);
  s.sum.by_producer.assign(static_cast<std::size_t>(producers), 0);
  s.sum.by_consumer.assign(static_cast<std::size_t>(consumers), 0);
  return {
    [=](std::int32_t consumer, const std::vector<item>& handled) {
      auto& s = self->state;
      for (auto [i, p] : handled) {
        if (p < 0 || i < 0 || i >= s.items
            || static_cast<std::size_t>(p) >= s.sum.by_producer.size())
          continue;  // not an item anyone produced
        auto k = static_cast<std::size_t>(p) * static_cast<std::size_t>(s.items)
                 + static_cast<std::size_t>(i);
        if (s.seen[k]++ == 0) {
          ++s.sum.distinct;
          ++s.sum.by_producer[static_cast<std::size_t>(p)];
        }
      }
      s.sum.deliveries += static_cast<std::int64_t>(handled.size());
      if (consumer >= 0 && static_cast<std::size_t>(consumer) < s.sum.by_consumer.size())
        s.sum.by_consumer[static_cast<std::size_t>(consumer)] +=
          static_cast<std::int64_t>(handled.size());
    },
    [=](report_atom, const report& r) {
      self->state.sum.reports.push_back(r);
      if (r.role == "consumer")
        self->state.finished.insert(r.id);
    },
    [=](summary_atom) {
      auto sum = self->state.sum;
      sum.consumers_finished = static_cast<std::int32_t>(self->state.finished.size());
      return sum;
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
  std::string kill = "consumers";  // consumers, producers, any
  int max_restarts = 1000;          // within 1 s
};

[[noreturn]] void usage(const std::string& why) {
  std::fprintf(stderr,
               "producer_consumer: %s\n"
               "usage: producer_consumer [--producers P] [--consumers C] [--items N]\n"
               "                         [--maxsize M] [--kill-every MS]\n"
               "                         [--kill consumers|producers|any] [--max-restarts R]\n",
               why.c_str());
  std::exit(2);
}

long number(const std::string& flag, const char* text, long min, long max) {
  char* end = nullptr;
  long v = std::strtol(text, &end, 10);
  if (end == text || *end != '\0' || v < min || v > max)
    usage(flag + " needs a number from " + std::to_string(min) + " to " + std::to_string(max));
  return v;
}

options parse(int argc, char** argv) {
  options o;
  for (int i = 1; i < argc; ++i) {
    std::string flag = argv[i];
    if (i + 1 >= argc)
      usage("missing value after " + flag);
    const char* v = argv[++i];
    if (flag == "--producers")
      o.producers = static_cast<std::int32_t>(number(flag, v, 1, 1000));
    else if (flag == "--consumers")
      o.consumers = static_cast<std::int32_t>(number(flag, v, 1, 1000));
    else if (flag == "--items")
      o.items = static_cast<std::int32_t>(number(flag, v, 0, 100'000'000));
    else if (flag == "--maxsize")
      o.maxsize = static_cast<std::size_t>(number(flag, v, 0, 100'000'000));
    else if (flag == "--kill-every")
      o.kill_every_ms = static_cast<int>(number(flag, v, 1, 3'600'000));
    else if (flag == "--max-restarts")
      o.max_restarts = static_cast<int>(number(flag, v, 0, 1'000'000));
    else if (flag == "--kill" && (std::string{v} == "consumers" || std::string{v} == "producers"
                                  || std::string{v} == "any"))
      o.kill = v;
    else
      usage("unknown option or value: " + flag + " " + v);
  }
  // The tally keeps a count per item: 2 bytes each.
  if (static_cast<std::int64_t>(o.producers) * o.items > 100'000'000)
    usage("--producers times --items is at most 100000000");
  return o;
}

// The producers: plain processes, not restarted. One killed before it answered its start
// counts as killed with nothing produced.
class producer_set {
public:
  producer_set(mproc::node& node, const options& o, item_queue& q, const caf::actor& tally) {
    for (std::int32_t id = 0; id < o.producers; ++id) {
      procs_.emplace_back(node, "producer", mproc::process_options{.name = "producer-" + std::to_string(id)},
                          id, o.items, q, tally);
      try {
        procs_.back().start();
      } catch (const mproc::error& e) {
        std::printf("producer %d did not start: %s\n", id, e.what());
      }
    }
  }

  // Waits for every producer. Should the consumers' supervisor give up (too many restarts
  // too fast), nothing would drain a bounded queue and the producers would wait in put()
  // for ever: the queue is closed instead, and their puts fail.
  void join_all(item_queue& q, mproc::supervisor& consumers) {
    for (auto& p : procs_)
      while (!p.join(200ms))
        if (consumers.wait(0ms))
          q.close();
  }

  // The exit code of producer `id` (after join_all); none if it never ran.
  std::optional<int> exitcode(std::size_t id) const { return procs_[id].exitcode(); }

  std::vector<pid_t> live_pids() const {
    std::vector<pid_t> out;
    for (const auto& p : procs_)
      if (p.is_alive())
        out.push_back(p.pid());
    return out;
  }

private:
  std::vector<mproc::process> procs_;
};

// The consumers, under a supervisor that replaces one that dies, as long as the run lasts.
mproc::child_spec consumer_spec(std::int32_t id, item_queue& q, const caf::actor& tally) {
  return {.id = "consumer-" + std::to_string(id),
          .actor = "consumer",
          .args = caf::make_message(id, q, tally),
          .restart = mproc::restart_policy::transient,  // one that finished stays finished
          .brutal_kill = true};
}

std::vector<pid_t> consumer_pids(mproc::supervisor& sup) {
  std::vector<pid_t> out;
  try {
    for (const auto& c : sup.tree(5s).children)
      if (c.pid != 0)
        out.push_back(static_cast<pid_t>(c.pid));
  } catch (const mproc::error&) {
    // the supervisor is busy or gone: no target this time
  }
  return out;
}

// --kill-every: SIGKILL a random process of the chosen kind every `ms`, from a thread of
// the root (the chaos tests do the same from outside the program).
class killer {
public:
  killer(const options& o, producer_set& producers, mproc::supervisor& consumers) {
    if (o.kill_every_ms <= 0)
      return;
    thread_ = std::thread{[this, o, &producers, &consumers] {
      std::mt19937 rng{42};
      while (!stop_) {
        std::this_thread::sleep_for(std::chrono::milliseconds{o.kill_every_ms});
        std::vector<pid_t> targets;
        if (o.kill != "producers")
          targets = consumer_pids(consumers);
        if (o.kill != "consumers")
          for (auto pid : producers.live_pids())
            targets.push_back(pid);
        if (!stop_ && !targets.empty())
          ::kill(targets[rng() % targets.size()], SIGKILL);
      }
    }};
  }
  ~killer() { stop(); }
  void stop() {
    stop_ = true;
    if (thread_.joinable())
      thread_.join();
  }

private:
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

tally_summary summary_of(mproc::node& node, const caf::actor& tally) {
  return node.request<tally_summary>(tally, 30s, summary_atom::value);
}

// Until every consumer saw the queue end. A run that makes no progress for a minute is
// stuck: say so rather than hang.
bool wait_for_consumers(mproc::node& node, const caf::actor& tally, std::int32_t consumers,
                        mproc::supervisor& sup) {
  std::int64_t seen = -1;
  auto last_progress = clock_type::now();
  for (;;) {
    auto s = summary_of(node, tally);
    if (s.consumers_finished == consumers)
      return true;
    if (sup.wait(0ms)) {
      std::fprintf(stderr, "producer_consumer: the consumers' supervisor ended: %s\n",
                   node.system().render(sup.reason()).c_str());
      return false;
    }
    if (s.deliveries != seen) {
      seen = s.deliveries;
      last_progress = clock_type::now();
    } else if (clock_type::now() - last_progress > 60s) {
      std::fprintf(stderr, "producer_consumer: no progress for 60 s; giving up\n");
      return false;
    }
    std::this_thread::sleep_for(5ms);
  }
}

using restart_counts = std::map<std::string, std::int32_t>;  // by child id

// A start_child that fails is the caller's to retry, as in OTP (a consumer killed while it
// starts, say): once it runs, the supervisor restarts it. Not once the supervisor itself
// ended (it gave up after a consumer started before died): the run then reports that.
// A minute of failures is a bug.
void start_consumer(mproc::supervisor& sup, const mproc::child_spec& spec) {
  auto give_up = clock_type::now() + 60s;
  for (;;) {
    try {
      sup.start_child(spec);
      return;
    } catch (const mproc::error& e) {
      if (sup.wait(0ms))
        return;
      if (clock_type::now() > give_up)
        throw;
      std::printf("%s failed to start (%s); starting it again\n", spec.id.c_str(), e.what());
    }
  }
}

restart_counts restarts_of(mproc::supervisor& sup) {
  restart_counts out;
  try {
    for (const auto& c : sup.tree(10s).children)
      out[c.id] = c.restarts;
  } catch (const mproc::error&) {
    // the supervisor has ended (it gave up): the summary goes without restart counts
  }
  return out;
}

void print_reports(const tally_summary& s, const options& o, const producer_set& producers,
                   const restart_counts& restarts) {
  std::printf("\nsummary\n");
  std::map<std::pair<bool, std::int32_t>, report> last;  // a consumer's last finished run
  for (const auto& r : s.reports)
    last[{r.role != "producer", r.id}] = r;
  for (std::int32_t id = 0; id < o.producers; ++id) {
    auto code = producers.exitcode(static_cast<std::size_t>(id));
    auto produced = s.by_producer[static_cast<std::size_t>(id)];
    if (auto r = last.find({false, id}); r != last.end() && code == 0)
      std::printf("  producer %d: %lld items, %.4f s\n", id, static_cast<long long>(produced),
                  r->second.seconds);
    else if (!code)
      std::printf("  producer %d: did not start\n", id);
    else
      std::printf("  producer %d: died (exit code %d) after %lld items reached the queue\n", id,
                  *code, static_cast<long long>(produced));
  }
  for (std::int32_t id = 0; id < o.consumers; ++id) {
    auto r = last.find({true, id});
    std::printf("  consumer %d: %lld items, %.4f s", id,
                static_cast<long long>(s.by_consumer[static_cast<std::size_t>(id)]),
                r != last.end() ? r->second.seconds : 0.0);
    if (auto n = restarts.find("consumer-" + std::to_string(id));
        n != restarts.end() && n->second > 0)
      std::printf(" (restarted %d times; the time is its last run's)", n->second);
    std::printf("\n");
  }
}

// Items a producer that finished put must all have been consumed; the rest is exact from the
// queue's own count of what it accepted.
std::int64_t lost_items(const tally_summary& s, const options& o, const producer_set& producers,
                        std::uint64_t accepted) {
  std::int64_t missing_from_finished = 0;
  for (std::int32_t id = 0; id < o.producers; ++id)
    if (producers.exitcode(static_cast<std::size_t>(id)) == 0)
      missing_from_finished += o.items - s.by_producer[static_cast<std::size_t>(id)];
  return std::max(static_cast<std::int64_t>(accepted) - s.distinct, missing_from_finished);
}

// Closes the queue when the run ends early (an exception): producers waiting in put() on a
// full queue then fail and end, instead of holding the node's exit, which waits for them.
struct close_on_exit {
  item_queue& q;
  ~close_on_exit() {
    try {
      q.close();
    } catch (const mproc::error&) {
      // the queue has ended already
    }
  }
};

int run(mproc::node& node, const options& o) {
  auto t0 = clock_type::now();

  item_queue q{node, {.maxsize = o.maxsize}};
  close_on_exit closer{q};
  auto tally_actor = node.spawn("tally", o.producers, o.consumers, o.items);
  mproc::supervisor consumers{node, {.intensity = o.max_restarts, .period = 1s, .name = "consumers"}, {}};
  for (std::int32_t id = 0; id < o.consumers; ++id)
    start_consumer(consumers, consumer_spec(id, q, tally_actor));
  producer_set producers{node, o, q, tally_actor};
  killer chaos{o, producers, consumers};

  producers.join_all(q, consumers);
  q.close();  // what the producers put is in; consumers drain it, then see the end
  bool finished = wait_for_consumers(node, tally_actor, o.consumers, consumers);
  auto secs = seconds_since(t0);
  chaos.stop();
  std::printf("all done finish\n");

  auto s = summary_of(node, tally_actor);
  auto stats = q.stats();
  print_reports(s, o, producers, restarts_of(consumers));
  consumers.stop();
  auto lost = lost_items(s, o, producers, stats.accepted);
  std::printf("  total: %lld items in %.3f s = %.0f items/s\n", static_cast<long long>(s.distinct),
              secs, static_cast<double>(s.distinct) / secs);
  std::printf("produced=%llu consumed=%lld lost=%lld duplicates=%lld redelivered=%llu\n",
              static_cast<unsigned long long>(stats.accepted), static_cast<long long>(s.distinct),
              static_cast<long long>(lost), static_cast<long long>(s.deliveries - s.distinct),
              static_cast<unsigned long long>(stats.redelivered));
  caf::anon_send_exit(tally_actor, caf::exit_reason::user_shutdown);
  return finished && lost == 0 ? 0 : 1;
}

} // namespace

int main(int argc, char** argv) {
  mproc::node node{argc, argv};
  auto o = parse(argc, argv);
  try {
    return run(node, o);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "producer_consumer: %s\n", e.what());
    return 1;
  }
}
