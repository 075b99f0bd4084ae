#include "mproc/runtime/internal/resolve.hpp"

#include <netdb.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <string>
#include <system_error>
#include <thread>

#include "mproc/runtime/deadline.hpp"
#include "mproc/runtime/errors.hpp"
#include "mproc/runtime/internal/tcp.hpp"

namespace mproc::detail {

namespace {

[[noreturn]] void fail(errc code, const std::string& why) {
  throw error(make_error(code, why), why);
}

// A name that does not exist or an address that cannot be used is the caller's mistake; a
// resolver that fails for now (no nameserver answers) is the network's, worth a retry.
[[noreturn]] void fail_lookup(const endpoint& at, int rc, int saved_errno) {
  auto why = "cannot resolve '" + at.host + "': "
             + (rc == EAI_SYSTEM ? std::strerror(saved_errno) : ::gai_strerror(rc));
  bool for_now = rc == EAI_AGAIN || rc == EAI_FAIL || rc == EAI_SYSTEM || rc == EAI_MEMORY;
  fail(for_now ? errc::unreachable : errc::bad_arguments, why);
}

addrinfo hints_for(bool passive, int extra) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = (passive ? AI_PASSIVE : 0) | extra;
  return hints;
}

constexpr int max_running_lookups = 16;
std::atomic<int> running_lookups{0};

// One resolution, shared by the caller and the thread that runs it: whichever lets go last
// frees it, so a caller that gave up leaves the thread nothing dangling.
struct lookup {
  std::string host, port;
  addrinfo hints{};
  int rc = 0;
  int saved_errno = 0;
  addrinfo* found = nullptr;
  std::atomic<bool> finished{false};
  int done_fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);  // readable once finished
  int open_errno = errno;                                  // why, when done_fd < 0

  ~lookup() {
    if (found != nullptr)
      ::freeaddrinfo(found);
    if (done_fd >= 0)
      ::close(done_fd);
  }
  void run() {
    rc = ::getaddrinfo(host.c_str(), port.c_str(), &hints, &found);
    saved_errno = errno;
    finished.store(true, std::memory_order_release);
    std::uint64_t one = 1;
    [[maybe_unused]] auto w = ::write(done_fd, &one, sizeof one);
  }
};

} // namespace

bool ready_by(int fd, short events, const due& by, std::string_view doing) {
  pollfd p[2] = {{fd, events, 0}, {by.cancel_fd, POLLIN, 0}};
  for (;;) {
    int rc = ::poll(p, by.cancel_fd >= 0 ? 2 : 1, poll_ms(by.at));
    if (rc > 0 && (p[1].revents & POLLIN) != 0)
      fail(errc::node_shutdown, "connect: the node is shutting down");
    if (rc > 0)
      return true;
    if (rc == 0 && std::chrono::steady_clock::now() >= by.at)
      return false;
    if (rc < 0 && errno != EINTR)
      fail(errc::unreachable, std::string{doing} + ": " + std::strerror(errno));
  }  // else poll's slice of a longer wait (poll_ms clamps), or a signal
}

void addrinfo_deleter::operator()(addrinfo* a) const {
  ::freeaddrinfo(a);
}

addrinfo_ptr resolve(const endpoint& at, bool passive, const due& by) {
  auto port = std::to_string(at.port);
  addrinfo* found = nullptr;
  auto numeric = hints_for(passive, AI_NUMERICHOST);
  int rc = ::getaddrinfo(at.host.c_str(), port.c_str(), &numeric, &found);
  if (rc == 0)
    return addrinfo_ptr{found};
  if (rc != EAI_NONAME)
    fail_lookup(at, rc, errno);
  auto l = std::make_shared<lookup>();
  l->host = at.host;
  l->port = port;
  l->hints = hints_for(passive, 0);
  if (l->done_fd < 0)
    fail(errc::unreachable, "cannot resolve '" + at.host + "': " + std::strerror(l->open_errno));
  // A resolution the caller gave up on runs on until the resolver does (its retries): a
  // caller retrying against a nameserver that never answers must not pile up threads.
  if (running_lookups.fetch_add(1) >= max_running_lookups) {
    --running_lookups;
    fail(errc::unreachable, "cannot resolve '" + at.host + "': "
                              + std::to_string(max_running_lookups)
                              + " earlier resolutions still wait for the nameserver");
  }
  try {
    std::thread{[l] {
      l->run();
      --running_lookups;
    }}.detach();
  } catch (const std::exception&) {  // system_error, or bad_alloc for its state
    l->run();  // no thread to be had: on this one, unbounded as before
    --running_lookups;
  }
  if (!ready_by(l->done_fd, POLLIN, by, "cannot resolve '" + at.host + "'")
      || !l->finished.load(std::memory_order_acquire))
    fail(errc::timeout, "cannot resolve '" + at.host + "': no answer within the timeout");
  if (l->rc != 0)
    fail_lookup(at, l->rc, l->saved_errno);
  return addrinfo_ptr{std::exchange(l->found, nullptr)};
}

} // namespace mproc::detail
