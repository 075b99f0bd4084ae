#include "mproc/runtime/internal/node_mode.hpp"

#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "mproc/runtime/authkey.hpp"
#include "mproc/runtime/log.hpp"
#include "mproc/runtime/internal/node_impl.hpp"

namespace mproc::detail {

struct node_mode_access {
  static node_impl& impl(node& n) { return *n.impl_; }
};

namespace {

[[noreturn]] void usage(const std::string& why) {
  std::fprintf(stderr,
               "mproc node mode: %s\n"
               "usage: PROGRAM --mproc-node [--listen HOST:PORT] [--authkey-file FILE]\n"
               "                [--name NAME] [--serve-forever] [--plaintext]\n"
               "                [--tls-ca FILE --tls-cert FILE --tls-key FILE]\n"
               "  --listen         address to accept nodes on (default 127.0.0.1:0)\n"
               "  --authkey-file   the shared key, mode 0600 (default: $MPROC_AUTHKEY)\n"
               "  --serve-forever  keep serving after the roots that connected are gone\n"
               "  --plaintext      also accept clients without TLS (frames in clear)\n"
               "  --tls-ca, --tls-cert, --tls-key\n"
               "                   certificates (PEM) instead of the authkey: peers must\n"
               "                   present one the CA signed\n",
               why.c_str());
  std::exit(2);
}

} // namespace

std::optional<node_mode_args> parse_node_mode(int argc, char** argv) {
  bool found = false;
  for (int i = 1; i < argc; ++i)
    found = found || std::strcmp(argv[i], "--mproc-node") == 0;
  if (!found)
    return std::nullopt;
  node_mode_args a;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc)
        usage(arg + " needs a value");
      return argv[++i];
    };
    if (arg == "--mproc-node")
      continue;
    else if (arg == "--listen")
      a.listen = value();
    else if (arg == "--authkey-file")
      a.authkey_file = value();
    else if (arg == "--name")
      a.name = value();
    else if (arg == "--serve-forever")
      a.serve_forever = true;
    else if (arg == "--plaintext")
      a.plaintext = true;
    else if (arg == "--tls-ca")
      a.certificates.ca_file = value();
    else if (arg == "--tls-cert")
      a.certificates.cert_file = value();
    else if (arg == "--tls-key")
      a.certificates.key_file = value();
    else if (arg == "--authkey")
      usage("a key on the command line is readable by every user: use --authkey-file");
    else
      usage("unknown option " + arg);
  }
  const auto& c = a.certificates;
  int given = !c.ca_file.empty() + !c.cert_file.empty() + !c.key_file.empty();
  if (given != 0 && given != 3)
    usage("--tls-ca, --tls-cert and --tls-key go together");
  if (given == 3 && (a.plaintext || !a.authkey_file.empty()))
    usage("certificates replace the authkey: no --authkey-file or --plaintext with them");
  return a;
}

namespace {

std::uint16_t listen(node& self, const node_mode_args& args) {
  if (!args.certificates.ca_file.empty())
    return self.listen(args.certificates, args.listen);
  auto key = args.authkey_file.empty() ? authkey::from_env() : authkey::from_file(args.authkey_file);
  return self.listen(key, args.listen,
                     args.plaintext ? node::link_security::plaintext : node::link_security::tls);
}

} // namespace

void run_node_mode(const node_mode_args& args, node_options options) {
  // Blocked before any thread exists, so only the waiter below takes them. Children are
  // spawned with an empty mask.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  options.name = args.name;
  std::unique_ptr<node> self;
  try {
    self = std::make_unique<node>(0, nullptr, options);
    auto port = listen(*self, args);
    auto shown = parse_endpoint(args.listen);
    shown.port = port;
    // The launcher (a root, ssh, a job script) reads this line to learn the port.
    std::printf("mproc node %s pid %d listening on %s\n", args.name.c_str(), ::getpid(),
                shown.text().c_str());
    std::fflush(stdout);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "mproc node: %s\n", e.what());
    // The node ends as on the normal path (its threads stopped, its introspection socket
    // removed) before anything static is destroyed.
    self.reset();
    std::fflush(nullptr);
    std::_Exit(1);
  }
  auto& impl = node_mode_access::impl(*self);
  std::atomic<bool> ending{false};
  std::thread signals([&] {
    int sig = 0;
    sigwait(&stop_signals, &sig);
    if (!ending.exchange(true))
      log::info("node mode ends (", strsignal(sig), ")");
    impl.stop_waiting();
  });
  impl.wait_for_roots(args.serve_forever);
  if (!ending.exchange(true)) {
    log::info("every root that connected is gone: this node ends");
    ::kill(::getpid(), SIGTERM);  // releases the signal thread's sigwait
  }
  signals.join();
  self.reset();  // stops daemon children, closes connections
  std::fflush(nullptr);
  std::_Exit(0);
}

} // namespace mproc::detail
