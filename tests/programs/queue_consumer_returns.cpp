// A consumer that returns while items remain queued (issue 11, case 1): the root puts
// 1,000 items, a child takes 300 and returns. Every item must be delivered, and since the
// child ended cleanly, none twice. Repeated (argv[1] rounds, default 20): the failures were
// races with a prefetch in flight and with the child's exit.
#include <cstdio>
#include <cstdlib>
#include <set>
#include <vector>

#include <caf/blocking_actor.hpp>

#include "mproc/actors/queue.hpp"
#include "mproc/runtime/actor_registry.hpp"
#include "mproc/runtime/node.hpp"

using namespace std::chrono_literals;
using int_queue = mproc::queue<std::int32_t>;

void taker(caf::blocking_actor*, int_queue q, std::int32_t n, int_queue out) {
  for (std::int32_t i = 0; i < n; ++i)
    out.put(q.get());
}
MPROC_ACTOR(taker);

namespace {

constexpr std::int32_t items = 1000;
constexpr std::int32_t taken = 300;

// Takes `n` items, waiting as long as it takes a slow machine (a lost item fails here).
std::vector<std::int32_t> take(int_queue& q, std::size_t n) {
  std::vector<std::int32_t> out;
  while (out.size() < n)
    for (auto x : q.get_many(n - out.size(), 20s))
      out.push_back(x);
  return out;
}

bool one_round(mproc::node& node, int round) {
  int_queue q{node};
  int_queue out{node};
  for (std::int32_t i = 0; i < items; ++i)
    q.put(i);
  auto p = node.spawn_process("taker", {}, q, taken, out);
  p.join();
  auto by_child = take(out, taken);
  auto rest = take(q, items - taken);
  std::multiset<std::int32_t> all(by_child.begin(), by_child.end());
  all.insert(rest.begin(), rest.end());
  std::set<std::int32_t> distinct(all.begin(), all.end());
  bool ok = p.exitcode() == 0 && distinct.size() == items && all.size() == items
            && q.stats().redelivered == 0;
  if (!ok)
    std::printf("round %d: exit %d, distinct %zu, deliveries %zu, redelivered %llu\n", round,
                p.exitcode().value_or(-1000), distinct.size(), all.size(),
                static_cast<unsigned long long>(q.stats().redelivered));
  return ok;
}

} // namespace

int main(int argc, char** argv) {
  mproc::node node{argc, argv};
  int rounds = argc > 1 ? std::atoi(argv[1]) : 20;
  int failed = 0;
  for (int r = 0; r < rounds; ++r)
    failed += one_round(node, r) ? 0 : 1;
  std::printf("%d rounds, %d failed\n", rounds, failed);
  return failed == 0 ? 0 : 1;
}
