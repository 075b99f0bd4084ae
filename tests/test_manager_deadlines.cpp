// The manager's waiters' timeouts (actors/manager_deadlines.hpp): due in order, one timer
// message on its way for the earliest, and waits answered early do not pile up.
#include "mproc/actors/manager_deadlines.hpp"

#include <catch2/catch.hpp>

using mproc::detail::manager_deadlines;
using namespace std::chrono_literals;

namespace {

std::vector<std::uint64_t> tokens(const std::vector<manager_deadlines::entry>& es) {
  std::vector<std::uint64_t> out;
  for (const auto& e : es)
    out.push_back(e.token);
  return out;
}

} // namespace

TEST_CASE("deadlines fall due in time order, a new timer only for one earlier than the last") {
  manager_deadlines d;
  auto t = manager_deadlines::clock::now();
  auto all = [](const manager_deadlines::entry&) { return true; };
  CHECK(d.add({t + 3s, 1, 3}, all) == t + 3s);
  CHECK(d.add({t + 1s, 1, 1}, all) == t + 1s);  // before the timer on its way: another
  CHECK_FALSE(d.add({t + 2s, 2, 2}, all));       // after it: that timer re-arms
  CHECK(d.due_by(t + 1s, t + 1s + 1ms).size() == 1);
  CHECK(d.next_timer() == t + 2s);
  CHECK_FALSE(d.next_timer());                   // on its way already
  CHECK(tokens(d.due_by(t + 2s, t + 5s)) == std::vector<std::uint64_t>{2, 3});
  CHECK_FALSE(d.next_timer());                   // nothing left
  CHECK(d.size() == 0);
}

TEST_CASE("deadlines of waits answered early are dropped, not kept for their whole timeout") {
  manager_deadlines d;
  auto t = manager_deadlines::clock::now();
  // A lock passed back and forth under acquire(1 h): each wait answered at once, but for
  // the last ten.
  const std::uint64_t n = 100'000;
  auto waiting = [&](const manager_deadlines::entry& e) { return e.token > n - 10; };
  std::size_t most = 0;
  for (std::uint64_t i = 1; i <= n; ++i) {
    d.add({t + 1h + std::chrono::microseconds{i}, 1, i}, waiting);
    most = std::max(most, d.size());
  }
  CHECK(most <= 2048);
  // The ones still waiting fall due all the same, in order.
  auto due = d.due_by(t + 2h, t + 2h);
  REQUIRE(due.size() >= 10);
  CHECK(due.back().token == n);
}
