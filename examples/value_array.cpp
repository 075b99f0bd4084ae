// The seeds' Value and Array program in mproc: a child sets a shared number and negates a
// shared array; the parent prints both.
//
//   Python:  num = Value('d', 0.0); arr = Array('i', range(10))
//            p = Process(target=f, args=(num, arr)); p.start(); p.join()
//            print(num.value); print(arr[:])
//   Output:  3.1415927
//            [0, -1, -2, -3, -4, -5, -6, -7, -8, -9]
#include <cstdint>
#include <cstdio>
#include <numeric>
#include <vector>

#include <mproc/actors/shared_array.hpp>
#include <mproc/actors/shared_value.hpp>
#include <mproc/runtime/node.hpp>
#include <mproc/runtime/task.hpp>

void f(mproc::shared_value<double> n, mproc::shared_array<std::int32_t> a) {
  n.set(3.1415927);
  for (std::size_t i = 0; i < a.size(); ++i)
    a.set(i, -a.get(i));
}
MPROC_TASK(f);

int main(int argc, char** argv) {
  mproc::node node{argc, argv};
  mproc::shared_value<double> num{0.0};
  std::vector<std::int32_t> range(10);
  std::iota(range.begin(), range.end(), 0);
  mproc::shared_array<std::int32_t> arr{range};

  auto p = node.spawn_process(f, {}, num, arr);
  p.join();

  std::printf("%.7f\n[", num.get());
  auto values = arr.to_vector();
  for (std::size_t i = 0; i < values.size(); ++i)
    std::printf("%s%d", i == 0 ? "" : ", ", values[i]);
  std::printf("]\n");
  return num.get() == 3.1415927 && values[9] == -9 ? 0 : 1;
}
