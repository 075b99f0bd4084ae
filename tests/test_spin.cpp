// The spin gauge (mproc/runtime/spin.hpp): a wait spins first only with more than one CPU and
// while each of the last waits of its kind ended within the limit.
#include "mproc/runtime/spin.hpp"

#include <sched.h>

#include <catch2/catch.hpp>

using namespace std::chrono_literals;
using mproc::detail::spin_gauge;

TEST_CASE("more_than_one_cpu says what this process's affinity allows") {
  cpu_set_t set;
  CPU_ZERO(&set);
  REQUIRE(sched_getaffinity(0, sizeof set, &set) == 0);
  CHECK(mproc::detail::more_than_one_cpu() == (CPU_COUNT(&set) > 1));
}

TEST_CASE("a gauge spins only where it may and while waits were fast lately") {
  spin_gauge g;
  CHECK(g.worth_spinning() == mproc::detail::more_than_one_cpu());
  g.observe(10ms);
  CHECK_FALSE(g.worth_spinning());
}

TEST_CASE("a slow wait stops the spinning until a streak of fast ones") {
  spin_gauge g;
  CHECK(g.fast_lately());  // nothing seen yet: try
  g.observe(10ms);         // an answer that came late
  CHECK_FALSE(g.fast_lately());
  for (int i = 1; i < spin_gauge::streak; ++i)
    g.observe(0ns);  // answers that were there at once, one short of a streak
  CHECK_FALSE(g.fast_lately());
  g.observe(0ns);
  CHECK(g.fast_lately());
  for (int i = 0; i < 1000; ++i)
    g.observe(0ns);
  g.observe(spin_gauge::limit + 1us);  // one slow answer after many fast ones stops it too
  CHECK_FALSE(g.fast_lately());
}

TEST_CASE("answers within the limit keep a gauge fast") {
  spin_gauge g;
  for (int i = 0; i < 100; ++i)
    g.observe(i % 2 ? spin_gauge::limit : 0ns);
  CHECK(g.fast_lately());
}

TEST_CASE("a wait that gave up before the limit says nothing; one that waited longer is slow") {
  spin_gauge g;
  g.observe(10ms);
  for (int i = 0; i < 2 * spin_gauge::streak; ++i)
    g.timed_out(0ns);  // polls that did not wait: not a streak of fast answers
  CHECK_FALSE(g.fast_lately());
  for (int i = 0; i < spin_gauge::streak; ++i)
    g.observe(0ns);
  g.timed_out(spin_gauge::limit / 2);
  CHECK(g.fast_lately());
  g.timed_out(spin_gauge::limit * 2);
  CHECK_FALSE(g.fast_lately());
}
