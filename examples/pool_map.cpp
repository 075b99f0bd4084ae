// The seeds' pool programs in mproc.
//
//   Python:  with Pool(5) as p: print(p.map(f, [1, 2, 3]))
//            results = [pool.apply_async(func, (msg,)) for msg in ...]
//            pool.close(); pool.join(); for res in results: print(res.get())
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include <mproc/actors/pool.hpp>
#include <mproc/runtime/node.hpp>

using namespace std::chrono_literals;

std::int64_t square(std::int64_t x) {
  return x * x;
}
MPROC_TASK(square);

// Which worker ran it, as the seed's func does with current_process().name.
std::string whoami(std::string msg) {
  return mproc::current_process_name() + "-" + msg;
}
MPROC_TASK(whoami);

// A call that fails (a worker killed from outside, the manager gone) throws mproc::error:
// reported, not an abort.
int main(int argc, char** argv) try {
  mproc::node node{argc, argv};  // first: in a worker process this line runs the worker

  {
    mproc::pool p{node, {.processes = 5}};
    auto squares = p.map(square, std::vector<std::int64_t>{1, 2, 3});
    std::printf("[");
    for (std::size_t i = 0; i < squares.size(); ++i)
      std::printf("%s%lld", i ? ", " : "", static_cast<long long>(squares[i]));
    std::printf("]\n");
    if (squares != std::vector<std::int64_t>{1, 4, 9})
      return 1;
  }  // the pool's destructor terminates its workers

  mproc::pool pool{node, {.processes = 4}};
  std::vector<mproc::async_result<std::string>> results;
  for (int i = 0; i < 20; ++i)
    results.push_back(pool.apply_async(whoami, "process " + std::to_string(i)));
  pool.close();  // no more work; the workers end once it is done
  if (!pool.join(30s)) {
    std::printf("the pool did not end within 30 s\n");
    return 1;
  }
  std::printf("Sub-process(es) done.\n");
  for (auto& r : results)
    std::printf("%s\n", r.get(1s).c_str());
  return 0;
} catch (const mproc::error& e) {
  std::fprintf(stderr, "pool_map: %s\n", e.what());
  return 1;
}
