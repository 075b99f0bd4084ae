// Nodes on separate "hosts": network namespaces this test creates, each joined to this one by
// a veth pair, each running this binary in node mode. Skipped, saying why, where namespaces
// cannot be created (not root, no CAP_NET_ADMIN, no iproute2).
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <caf/event_based_actor.hpp>

#include <catch2/catch.hpp>

#include "mproc/runtime/actor_registry.hpp"
#include "mproc/runtime/node.hpp"
#include "support.hpp"

using namespace std::chrono_literals;
using mproc::errc;
using test::code_of;

namespace {

caf::behavior netns_echo(caf::event_based_actor*) {
  return {[](std::int32_t x) { return x + 1; }};
}

bool run(const std::string& command) {
  return std::system((command + " >/dev/null 2>&1").c_str()) == 0;
}

// One namespace with a veth to this one: here 10.201.<n>.1, there 10.201.<n>.2.
class host {
public:
  host(int n) : n_(n) {
    auto tag = std::to_string(::getpid() % 100000) + "-" + std::to_string(n);
    ns_ = "mproc-test-" + tag;
    here_ = "mph" + tag;
    there_ = "mpn" + tag;
    auto net = "10.201." + std::to_string(n);
    ok_ = run("ip netns add " + ns_) && run("ip link add " + here_ + " type veth peer name " + there_)
          && run("ip link set " + there_ + " netns " + ns_)
          && run("ip addr add " + net + ".1/24 dev " + here_) && run("ip link set " + here_ + " up")
          && run("ip netns exec " + ns_ + " ip addr add " + net + ".2/24 dev " + there_)
          && run("ip netns exec " + ns_ + " ip link set " + there_ + " up")
          && run("ip netns exec " + ns_ + " ip link set lo up");
    address_ = net + ".2";
  }
  ~host() {
    if (node_pid_ > 0)
      ::kill(node_pid_, SIGKILL);
    if (out_ != nullptr)
      ::pclose(out_);
    run("ip link del " + here_);  // also removes the other end
    run("ip netns del " + ns_);
  }
  bool ok() const { return ok_; }

  // Starts this test binary in node mode inside the namespace; its address, or "".
  std::string start_node(const std::string& keyfile) {
    auto command = "exec ip netns exec " + ns_ + " /proc/" + std::to_string(::getpid())
                   + "/exe --mproc-node --name host-" + std::to_string(n_) + " --listen "
                   + address_ + ":0 --authkey-file " + keyfile;
    out_ = ::popen(command.c_str(), "r");
    char line[256] = {};
    if (out_ == nullptr || std::fgets(line, sizeof line, out_) == nullptr)
      return {};
    if (const char* pid = std::strstr(line, " pid "))
      node_pid_ = std::atoi(pid + 5);
    const char* at = std::strstr(line, "listening on ");
    return at ? std::string{at + 13, std::strcspn(at + 13, "\n")} : std::string{};
  }
  void cut() { run("ip link set " + here_ + " down"); }
  pid_t node_pid() const { return node_pid_; }

private:
  int n_;
  std::string ns_, here_, there_, address_;
  bool ok_ = false;
  FILE* out_ = nullptr;
  pid_t node_pid_ = 0;
};

std::string write_keyfile(const mproc::authkey& key) {
  char path[] = "/tmp/mproc-netns-key-XXXXXX";
  int fd = ::mkstemp(path);
  REQUIRE(fd >= 0);
  auto s = key.secret();
  REQUIRE(::write(fd, s.data(), s.size()) == static_cast<ssize_t>(s.size()));
  ::close(fd);
  return path;
}

} // namespace

MPROC_ACTOR(netns_echo);

TEST_CASE("nodes on two hosts: remote spawn on each, and a cut link is detected") {
  if (::geteuid() != 0 || !run("ip netns list")) {
    WARN("skipped: creating network namespaces needs root and iproute2");
    return;
  }
  host a{1}, b{2};
  if (!a.ok() || !b.ok()) {
    WARN("skipped: this machine does not permit creating network namespaces and veth pairs");
    return;
  }
  test::scoped_node node;
  auto key = mproc::authkey::generate();
  auto keyfile = write_keyfile(key);
  auto at_a = a.start_node(keyfile);
  auto at_b = b.start_node(keyfile);
  std::remove(keyfile.c_str());
  REQUIRE(at_a.rfind("10.201.1.2:", 0) == 0);
  REQUIRE(at_b.rfind("10.201.2.2:", 0) == 0);

  auto node_a = node->connect(at_a, key);
  auto node_b = node->connect(at_b, key);
  CHECK(node_a.pid() == a.node_pid());
  auto echo_a = node_a.spawn("netns_echo");
  auto echo_b = node_b.spawn("netns_echo");
  CHECK(node->request<std::int32_t>(echo_a, 5s, std::int32_t{1}) == 2);
  CHECK(node->request<std::int32_t>(echo_b, 5s, std::int32_t{10}) == 11);

  std::atomic<bool> a_down{false};
  node_a.on_down([&](const std::string&) { a_down = true; });
  auto cut_at = std::chrono::steady_clock::now();
  a.cut();
  REQUIRE(test::eventually(10s, [&] { return a_down.load(); }));
  CHECK(std::chrono::steady_clock::now() - cut_at < 3500ms);
  CHECK(code_of([&] { node->request<std::int32_t>(echo_a, 5s, std::int32_t{1}); }) != errc::none);
  // The other host is unaffected.
  CHECK(node->request<std::int32_t>(echo_b, 5s, std::int32_t{20}) == 21);
  // Cut off from its root, host 1's node gives up on it and ends by itself.
  CHECK(test::eventually(10s, [&] { return !test::running(a.node_pid()); }));
  node_b.disconnect();
  CHECK(test::eventually(10s, [&] { return !test::running(b.node_pid()); }));
}
