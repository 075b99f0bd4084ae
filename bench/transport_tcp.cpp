// bench_transport's TCP rows (see transport.cpp's header for the list): another node in a
// child process, reached over loopback TCP with TLS or in clear, and TLS's own ceiling.
#include <cstdio>
#include <string>
#include <vector>

#include <caf/event_based_actor.hpp>

#include "mproc/runtime/actor_registry.hpp"
#include "mproc/runtime/internal/tls.hpp"
#include "transport.hpp"

using namespace std::chrono_literals;

namespace {

// Another node, as a child process that listens on loopback TCP; answers its port.
caf::behavior tcp_node(caf::event_based_actor*, std::string key, bool plaintext) {
  return {[=](caf::get_atom) -> std::int32_t {
    return mproc::this_node().listen(mproc::authkey::from_string(key), "127.0.0.1:0",
                                     plaintext ? mproc::node::link_security::plaintext
                                               : mproc::node::link_security::tls);
  }};
}

// A node in a child process, connected over TLS or in clear; ended when it goes.
class tcp_peer {
  mproc::authkey key_ = mproc::authkey::generate();  // first: the others are made with it
  mproc::process host_;

public:
  mproc::remote_node remote;

  tcp_peer(mproc::node& node, bool plaintext)
    : host_(node.spawn_process("tcp_node", {}, std::string{key_.secret()}, plaintext)),
      remote(node.connect(address(node), key_, 5s,
                          plaintext ? mproc::node::link_security::plaintext
                                    : mproc::node::link_security::tls)) {}
  ~tcp_peer() {
    remote.disconnect();
    host_.terminate();
    host_.join(5s);
  }

private:
  std::string address(mproc::node& node) {
    auto port = node.request<std::int32_t>(host_.actor(), 5s, caf::get_atom::value);
    return "127.0.0.1:" + std::to_string(port);
  }
};

// Two sessions keyed alike, handshaken in memory.
struct session_pair {
  using session = mproc::detail::tls::session;
  session client{session::role::client, "bench key, sixteen bytes or more"};
  session server{session::role::server, "bench key, sixteen bytes or more"};
  session_pair() {
    std::string to_server, to_client;
    auto c = client.handshake(nullptr, 0, to_server);
    auto s = session::progress::more;
    while (c != session::progress::failed && s != session::progress::failed
           && (c != session::progress::done || s != session::progress::done)) {
      s = server.handshake(to_server.data(), to_server.size(), to_client);
      to_server.clear();
      c = client.handshake(to_client.data(), to_client.size(), to_server);
      to_client.clear();
    }
    if (c != session::progress::done || s != session::progress::done)
      std::fprintf(stderr, "tls_records: no handshake: %s\n", client.failure().c_str());
  }
};

} // namespace

MPROC_ACTOR(tcp_node);

namespace bench {

void tcp_pingpong(mproc::node& node, const options& o, bool plaintext) {
  tcp_peer peer{node, plaintext};
  measure_pingpong(node, o, plaintext ? "tcp_pingpong_plaintext" : "tcp_pingpong",
                   peer.remote.spawn("pong"));
}

void tcp_oneway(mproc::node& node, const options& o, bool plaintext) {
  tcp_peer peer{node, plaintext};
  measure_oneway(node, o, plaintext ? "tcp_oneway_plaintext" : "tcp_oneway",
                 peer.remote.spawn("sink"), 1);
}

void tcp_bandwidth(mproc::node& node, const options& o, bool plaintext) {
  tcp_peer peer{node, plaintext};
  transfers_to<mproc::bytes>(node, o,
                             plaintext ? "tcp_bandwidth_64MiB_plaintext" : "tcp_bandwidth_64MiB",
                             peer.remote.spawn("measure"), 64, o.quick ? 2 : 5);
}

// 1 MiB per seal, as a link seals a batch: records of 16 KiB.
void tls_records(mproc::node& node, const options& o) {
  (void)node;
  session_pair pair;
  std::string plain(1 << 20, 'p'), sealed, answers;
  std::vector<char> opened(1 << 20);
  bench::transfers(o, "tls_records", 64, o.quick ? 2 : 5, [&] {
    for (int mib = 0; mib < 64; ++mib) {
      sealed.clear();
      pair.client.seal(plain.data(), plain.size(), sealed);
      pair.server.feed(sealed.data(), sealed.size());
      std::size_t got = 0;
      while (got < plain.size()) {
        auto n = pair.server.open(opened.data() + got, opened.size() - got, answers);
        if (n <= 0) {
          std::fprintf(stderr, "tls_records: open failed\n");
          return;
        }
        got += static_cast<std::size_t>(n);
      }
    }
  });
}

} // namespace bench
