#include "mproc/actors/wait.hpp"

#include <poll.h>

#include <algorithm>
#include <cerrno>
#include <type_traits>
#include <system_error>

#include "mproc/runtime/blocking.hpp"

namespace mproc {

namespace {

using clock_type = std::chrono::steady_clock;

// Checked without waiting: a connection may hold a whole message already read from its
// socket (the socket then polls empty), a process may have ended since the last poll.
std::vector<std::size_t> ready_now(const std::vector<waitable>& objects) {
  std::vector<std::size_t> ready;
  for (std::size_t i = 0; i < objects.size(); ++i) {
    bool is_ready = std::visit(
      [](const auto& o) {
        if constexpr (std::is_same_v<std::decay_t<decltype(o)>, process>) {
          return !o.is_alive();  // descriptors() refused one that never ran
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
  auto deadline = timeout ? clock_type::now() + *timeout : clock_type::time_point::max();
  auto fds = descriptors(objects);
  for (;;) {
    if (auto ready = ready_now(objects); !ready.empty())
      return ready;
    int ms = -1;
    if (timeout) {
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
