#include "harness.hpp"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>

namespace bench {

options parse(int argc, char** argv) {
  options o;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--quick") == 0)
      o.quick = true;
    else if (std::strcmp(argv[i], "--label") == 0 && i + 1 < argc)
      o.suffix = std::string{"_"} + argv[++i];
    else if (std::strcmp(argv[i], "--only") == 0 && i + 1 < argc)
      o.only = argv[++i];
  }
  return o;
}

void result(const options& o, const char* workload, const char* metric, double value,
            const char* unit) {
  std::printf("RESULT %s %s%s %s %.3f %s\n", o.system.c_str(), workload, o.suffix.c_str(), metric,
              value, unit);
  std::fflush(stdout);
}

double percentile(std::vector<double> xs, double p) {
  std::sort(xs.begin(), xs.end());
  return xs[static_cast<std::size_t>(p * static_cast<double>(xs.size() - 1))];
}

double rss_mib(int pid) {
  std::ifstream in{"/proc/" + std::to_string(pid) + "/status"};
  std::string key;
  while (in >> key) {
    if (key == "VmRSS:") {
      double kib = 0;
      in >> kib;
      return kib / 1024.0;
    }
    in.ignore(1 << 12, '\n');
  }
  return 0;
}

void run(mproc::node& node, const options& o,
         const std::vector<std::pair<const char*, workload>>& workloads) {
  for (auto [name, fn] : workloads)
    if (o.only.empty() || o.only == name)
      fn(node, o);
}

void run(const options& o, const std::vector<std::pair<const char*, plain_workload>>& workloads) {
  for (auto [name, fn] : workloads)
    if (o.only.empty() || o.only == name)
      fn(o);
}

} // namespace bench
