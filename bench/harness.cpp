#include "harness.hpp"

#include <algorithm>

#include <sys/resource.h>
#include <unistd.h>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
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

void raise_fd_limit(std::size_t wanted) {
  rlimit lim{};
  if (::getrlimit(RLIMIT_NOFILE, &lim) != 0 || lim.rlim_cur >= wanted)
    return;
  lim.rlim_cur = std::min<rlim_t>(wanted, lim.rlim_max);
  ::setrlimit(RLIMIT_NOFILE, &lim);
}

std::size_t open_fds() {
  std::size_t n = 0;
  for ([[maybe_unused]] auto& e : std::filesystem::directory_iterator{"/proc/self/fd"})
    ++n;
  return n;
}

int zombie_children() {
  int n = 0;
  for (auto& e : std::filesystem::directory_iterator{"/proc"}) {
    std::ifstream in{e.path() / "stat"};
    std::string line;
    if (!std::getline(in, line) || line.rfind(')') == std::string::npos)
      continue;
    char state = 0;
    int ppid = 0;
    std::sscanf(line.c_str() + line.rfind(')') + 2, "%c %d", &state, &ppid);
    n += state == 'Z' && ppid == ::getpid();
  }
  return n;
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

namespace {

using clock_type = std::chrono::steady_clock;

double seconds(clock_type::duration d) {
  return std::chrono::duration<double>(d).count();
}

} // namespace

void round_trips(const options& o, const char* workload, const std::function<void()>& once) {
  for (int i = 0; i < 1000; ++i)  // warm up caches, allocators, schedulers
    once();
  int n = o.quick ? 2000 : 20000;
  std::vector<double> rtt;
  rtt.reserve(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) {
    auto t0 = clock_type::now();
    once();
    rtt.push_back(seconds(clock_type::now() - t0) * 1e6);
  }
  result(o, workload, "p50", percentile(rtt, 0.50), "us");
  result(o, workload, "p99", percentile(rtt, 0.99), "us");
}

void transfers(const options& o, const char* workload, std::size_t mib, int n,
               const std::function<void()>& once) {
  std::vector<double> mibs;
  for (int i = 0; i < n; ++i) {
    auto t0 = clock_type::now();
    once();
    mibs.push_back(static_cast<double>(mib) / seconds(clock_type::now() - t0));
  }
  result(o, workload, "median", percentile(mibs, 0.5), "MiB/s");
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
