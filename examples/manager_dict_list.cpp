// The tutorials' Manager program: a child process fills a shared dict and reverses a shared
// list; the parent prints both, as Python prints them.
//
//   Python:  def f(d, l):
//                d[1] = '1'; d['2'] = 2; d[0.25] = None; l.reverse()
//            with Manager() as manager:
//                d = manager.dict(); l = manager.list(range(10))
//                p = Process(target=f, args=(d, l)); p.start(); p.join()
//                print(d); print(l)
#include <cstdio>
#include <iostream>
#include <numeric>
#include <vector>

#include <mproc/actors/manager.hpp>
#include <mproc/runtime/task.hpp>

using mproc::value;

void f(mproc::dict_proxy<value, value> d, mproc::list_proxy<int> l) {
  d.set(1, "1");
  d.set("2", 2);
  d.set(0.25, nullptr);
  l.reverse();
}
MPROC_TASK(f);

// A call that fails (a worker killed from outside, the manager gone) throws mproc::error:
// reported, not an abort.
int main(int argc, char** argv) try {
  mproc::node node{argc, argv};
  mproc::manager manager{node};
  auto d = manager.dict<value, value>();
  auto l = manager.list<int>();
  std::vector<int> range(10);
  std::iota(range.begin(), range.end(), 0);
  l.extend(range);

  auto p = node.spawn_process(f, {}, d, l);
  p.join();
  std::cout << d << "\n" << l << "\n";
} catch (const mproc::error& e) {
  std::fprintf(stderr, "manager_dict_list: %s\n", e.what());
  return 1;
}
