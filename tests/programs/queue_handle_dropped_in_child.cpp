// A child function puts many items into a bounded queue and returns at once, its handle
// gone while most items still wait to go out; the parent takes them slower than they are
// put. Every item must arrive, once, and the child must end by itself.
#include <cstdio>
#include <set>

#include <mproc/actors/queue.hpp>
#include <mproc/runtime/node.hpp>
#include <mproc/runtime/task.hpp>

using namespace std::chrono_literals;

constexpr int items = 5000;

void produce(mproc::queue<int> q) {
  for (int i = 0; i < items; ++i)
    q.put(i);
}
MPROC_TASK(produce);

int main(int argc, char** argv) {
  mproc::node node{argc, argv};
  mproc::queue<int> q{node, {.maxsize = 64}};
  auto p = node.spawn_process(produce, {}, q);
  std::set<int> seen;
  for (int i = 0; i < items; ++i)
    if (!seen.insert(q.get(30s)).second) {
      std::printf("an item arrived twice\n");
      return 1;
    }
  if (!p.join(30s) || p.exitcode() != 0) {
    std::printf("the producer did not end by itself\n");
    return 1;
  }
  std::printf("%zu items, all once\n", seen.size());
  return seen.size() == items ? 0 : 1;
}
