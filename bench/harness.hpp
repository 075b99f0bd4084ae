// What every benchmark program shares: its options, RESULT lines, percentiles, and running
// the workloads asked for.
//   --quick      small sizes, for a smoke run
//   --only NAME  one workload
//   --label X    "_X" appended to workload names (run.py labels the pinned runs)
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace mproc {
class node;
}

namespace bench {

struct options {
  std::string system = "mproc";  // the second word of RESULT lines
  bool quick = false;
  std::string suffix;
  std::string only;
};

options parse(int argc, char** argv);

// "RESULT <system> <workload><suffix> <metric> <value> <unit>"
void result(const options& o, const char* workload, const char* metric, double value,
            const char* unit);

double percentile(std::vector<double> xs, double p);

// VmRSS of process `pid` in MiB, from /proc/<pid>/status; 0 if unknown.
double rss_mib(int pid);

// Raises this process's soft limit of open descriptors to `wanted` (at most the hard
// limit): a run with a thousand children holds a few descriptors for each.
void raise_fd_limit(std::size_t wanted);
// Descriptors open in this process, and its children that are zombies: what a run with
// many children must leave as it found them.
std::size_t open_fds();
int zombie_children();

// Times `once` (one round trip): 1,000 to warm up, then 20,000 (2,000 with --quick);
// reports p50 and p99 in microseconds.
void round_trips(const options& o, const char* workload, const std::function<void()>& once);

// Times `once` (one message of `mib` MiB, acknowledged) `n` times; reports the median MiB/s.
void transfers(const options& o, const char* workload, std::size_t mib, int n,
               const std::function<void()>& once);

using workload = void (*)(mproc::node&, const options&);

// Runs the named workloads in order (or just --only's).
void run(mproc::node& node, const options& o,
         const std::vector<std::pair<const char*, workload>>& workloads);

// The same without a node, for the raw baseline.
using plain_workload = void (*)(const options&);
void run(const options& o, const std::vector<std::pair<const char*, plain_workload>>& workloads);

} // namespace bench
