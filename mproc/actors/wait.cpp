#include "mproc/actors/wait.hpp"

#include <poll.h>

#include <algorithm>
#include <cerrno>
#include <type_traits>
#include <system_error>

#include "mproc/runtime/blocking.hpp"
#include "mproc/runtime/deadline.hpp"

namespace mproc {

namespace {

using clock_type = std::chrono::steady_clock;

// Checked without waiting: a connection may hold a whole message already read from its
// socket (the socket then polls empty), a process may have ended since the last poll. A
// process whose sentinel polled readable has ended, also while its node has not yet
// recorded it (is_alive() still true): counted now, or poll would return at once again
// and again until the node does.
std::vector<std::size_t> ready_now(const std::vector<waitable>& objects,
                                   const std::vector<pollfd>& polled) {
  std::vector<std::size_t> ready;
  for (std::size_t i = 0; i < objects.size(); ++i) {
    bool is_ready = std::visit(
      [&](const auto& o) {
        if constexpr (std::is_same_v<std::decay_t<decltype(o)>, process>) {
          // descriptors() refused one that never ran
          return !o.is_alive() || (polled[i].revents & (POLLIN | POLLHUP | POLLERR)) != 0;
        } else {
          auto end = o;  // a handle: the copy polls the same end
          return end.poll(std::chrono::milliseconds{0});
        }
      },
      objects[i]);
    if (is_ready)
      ready.push_back(i);
  }
  return ready;
}

std::vector<pollfd> descriptors(const std::vector<waitable>& objects) {
  std::vector<pollfd> fds;
  fds.reserve(objects.size());
  for (const auto& o : objects) {
    int fd = std::visit(
      [](const auto& x) {
        if constexpr (std::is_same_v<std::decay_t<decltype(x)>, process>)
          return x.sentinel();
        else
          return x.fileno();
      },
      o);
    fds.push_back({fd, POLLIN, 0});
  }
  return fds;
}

} // namespace

std::vector<std::size_t> wait(const std::vector<waitable>& objects,
                              std::optional<std::chrono::milliseconds> timeout) {
  auto deadline = deadline_after(timeout);  // a century or more: for ever, no overflow
  auto fds = descriptors(objects);
  for (;;) {
    if (auto ready = ready_now(objects, fds); !ready.empty())
      return ready;
    int ms = -1;
    if (deadline != clock_type::time_point::max()) {
      auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - clock_type::now());
      if (left.count() <= 0)
        return {};
      ms = static_cast<int>(std::min<long long>(left.count(), 60'000));
    }
    will_block();
    // Something happened: ready_now says what (a connection whose socket holds data counts).
    if (::poll(fds.data(), fds.size(), ms) < 0 && errno != EINTR)
      throw std::system_error(errno, std::generic_category(), "wait: poll");
  }
}

} // namespace mproc
