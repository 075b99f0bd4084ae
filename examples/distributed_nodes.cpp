// Nodes on "other machines": the root starts two nodes of this very program in node mode,
// listening on loopback (as `ssh host ./distributed_nodes --mproc-node ...` would on real
// machines), connects to both with a shared authkey, runs a producer and a consumer on each
// around one queue in the root, prints which node and pid ran each, and shuts all down.
//
//   ./distributed_nodes [--items N]
#include <fcntl.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include <caf/blocking_actor.hpp>

#include <mproc/actors/queue.hpp>
#include <mproc/runtime/actor_registry.hpp>
#include <mproc/runtime/node.hpp>

using namespace std::chrono_literals;
using int_queue = mproc::queue<std::int32_t>;
using text_queue = mproc::queue<std::string>;

std::string whereami() {
  return mproc::current_process_name() + " pid " + std::to_string(::getpid());
}

void producer(caf::blocking_actor*, int_queue q, std::int32_t n, text_queue reports) {
  for (std::int32_t i = 0; i < n; ++i)
    q.put(i);
  q.flush(30s);  // in the queue, not in flight, before the root hears "done" and ends it
  reports.put("producer on " + whereami() + " put " + std::to_string(n));
}

void consumer(caf::blocking_actor*, int_queue q, text_queue reports) {
  std::int64_t taken = 0;
  while (q.get() >= 0)
    ++taken;
  reports.put("consumer on " + whereami() + " took " + std::to_string(taken));
}

MPROC_ACTOR(producer);
MPROC_ACTOR(consumer);

namespace {

// This program started as a node listening on a free loopback port; its stdout tells the
// port. On real machines ssh would start it; here it is tied to this root as a child would
// be (PR_SET_PDEATHSIG): a root killed before it connected leaves no node behind.
struct started_node {
  pid_t pid = -1;
  std::string address;
};

started_node start_node(const std::string& name, const std::string& keyfile) {
  started_node n;
  int out[2];
  if (::pipe2(out, O_CLOEXEC) != 0)
    return n;
  pid_t root = ::getpid();
  auto exe = "/proc/" + std::to_string(root) + "/exe";
  n.pid = ::fork();
  if (n.pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (::getppid() != root)
      ::_exit(1);  // the root died before the prctl
    ::dup2(out[1], STDOUT_FILENO);
    ::execl(exe.c_str(), exe.c_str(), "--mproc-node", "--name", name.c_str(), "--listen",
            "127.0.0.1:0", "--authkey-file", keyfile.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  ::close(out[1]);
  // "mproc node NAME pid PID listening on HOST:PORT", within 30 s
  std::string line;
  pollfd p{out[0], POLLIN, 0};
  char c = 0;
  while (n.pid > 0 && line.find('\n') == std::string::npos && ::poll(&p, 1, 30'000) > 0
         && ::read(out[0], &c, 1) == 1)
    line += c;
  ::close(out[0]);
  if (auto at = line.find("listening on "); at != std::string::npos)
    n.address = line.substr(at + 13, line.find('\n', at) - at - 13);
  return n;
}

// Reaps `pid`, giving it 10 s to end by itself: one that hangs is killed, not waited for.
int reap(pid_t pid) {
  int status = -1;
  for (int i = 0; i < 500; ++i) {
    pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid || (r < 0 && errno != EINTR))
      return status;
    std::this_thread::sleep_for(std::chrono::milliseconds{20});
  }
  ::kill(pid, SIGKILL);
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return status;
}

// Ends the started nodes (a run that failed midway) and reaps them; true if each ended well.
bool end_nodes(const std::vector<started_node>& started, bool stop) {
  bool ok = true;
  for (const auto& s : started) {
    if (s.pid <= 0)
      continue;
    if (stop)
      ::kill(s.pid, SIGTERM);
    int status = reap(s.pid);
    ok = ok && WIFEXITED(status) && WEXITSTATUS(status) == 0;
  }
  return ok;
}

// The key in a new file of mode 0600 for the nodes to read; "" when it cannot be written.
std::string write_keyfile(const mproc::authkey& key) {
  char path[] = "/tmp/mproc-example-key-XXXXXX";
  int fd = ::mkstemp(path);  // mode 0600
  if (fd < 0)
    return {};
  auto secret = key.secret();
  bool written = ::write(fd, secret.data(), secret.size()) == static_cast<ssize_t>(secret.size());
  ::close(fd);
  if (!written)
    std::remove(path);
  return written ? path : "";
}

// Connects to the started nodes, runs a producer and a consumer on each, and disconnects.
int run(mproc::node& node, const std::vector<started_node>& started, const mproc::authkey& key,
        std::int32_t items) {
  std::vector<mproc::remote_node> nodes;
  for (const auto& s : started) {
    if (s.address.empty()) {
      std::printf("a node did not start\n");
      return 1;
    }
    nodes.push_back(node.connect(s.address, key));
    std::printf("connected to %s (pid %lld) at %s\n", nodes.back().name().c_str(),
                static_cast<long long>(nodes.back().pid()), s.address.c_str());
  }
  int_queue q{node};
  text_queue reports{node};
  for (auto& n : nodes) {
    n.spawn("producer", q, items, reports);
    n.spawn("consumer", q, reports);
  }
  std::vector<std::string> lines;
  for (std::size_t i = 0; i < nodes.size(); ++i)  // the producers
    lines.push_back(reports.get(30s));
  for (std::size_t i = 0; i < nodes.size(); ++i)
    q.put(-1);  // one sentinel per consumer
  for (std::size_t i = 0; i < nodes.size(); ++i)
    lines.push_back(reports.get(30s));
  std::int64_t taken = 0;
  for (auto& l : lines) {
    std::printf("%s\n", l.c_str());
    if (l.rfind("consumer", 0) == 0)
      taken += std::atoll(l.c_str() + l.rfind(' ') + 1);
  }
  std::printf("put %d, taken %lld\n", items * 2, static_cast<long long>(taken));
  for (auto& n : nodes)
    n.disconnect();  // a node whose roots are all gone ends
  return taken == 2LL * items ? 0 : 1;
}

} // namespace

int main(int argc, char** argv) {
  mproc::node node{argc, argv};  // in a started node this serves and never returns
  std::int32_t items = 10'000;
  for (int i = 1; i + 1 < argc; ++i)
    if (std::strcmp(argv[i], "--items") == 0)
      items = std::atoi(argv[i + 1]);

  auto key = mproc::authkey::generate();
  auto keyfile = write_keyfile(key);
  if (keyfile.empty()) {
    std::printf("cannot write the key file in /tmp\n");
    return 1;
  }
  std::vector<started_node> started{start_node("node-A", keyfile), start_node("node-B", keyfile)};
  std::remove(keyfile.c_str());  // read by both nodes at start

  int status = 0;
  try {
    status = run(node, started, key, items);
  } catch (const std::exception& e) {  // a node lost midway, a report that never came
    std::printf("the run failed: %s\n", e.what());
    end_nodes(started, true);
    return 1;
  }
  if (!end_nodes(started, status != 0))
    status = 1;
  std::printf("all nodes ended\n");
  return status;
}
