// The spin gauge (mproc/runtime/spin.hpp): a wait spins first only with more than one CPU and
// while the recent waits of its kind ended within the limit.
#include "mproc/runtime/spin.hpp"

#include <sched.h>

#include <catch2/catch.hpp>

using namespace std::chrono_literals;

TEST_CASE("more_than_one_cpu says what this process's affinity allows") {
  cpu_set_t set;
  CPU_ZERO(&set);
  REQUIRE(sched_getaffinity(0, sizeof set, &set) == 0);
  CHECK(mproc::more_than_one_cpu() == (CPU_COUNT(&set) > 1));
}

TEST_CASE("a gauge stops spinning after slow waits and spins again after a run of fast ones") {
  mproc::spin_gauge g;
  bool can = mproc::more_than_one_cpu();  // with one CPU it never spins
  CHECK(g.worth_spinning() == can);        // nothing seen yet: try
  g.observe(10ms);                         // an answer that came late
  CHECK_FALSE(g.worth_spinning());
  for (int i = 0; i < 100; ++i)
    g.observe(0ns);  // answers that were there at once
  CHECK(g.worth_spinning() == can);
  g.observe(mproc::spin_gauge::limit * 20);  // one slow answer among fast ones stops it too
  CHECK_FALSE(g.worth_spinning());
}

TEST_CASE("answers a little faster than the limit keep a gauge spinning") {
  mproc::spin_gauge g;
  for (int i = 0; i < 100; ++i)
    g.observe(mproc::spin_gauge::limit / 2);
  CHECK(g.worth_spinning() == mproc::more_than_one_cpu());
}
