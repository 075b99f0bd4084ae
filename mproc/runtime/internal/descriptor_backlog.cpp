#include "mproc/runtime/internal/descriptor_backlog.hpp"

#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/stat.h>

namespace mproc::detail {

void descriptor_backlog::sent(std::size_t weight, std::uint64_t end) {
  queued_ -= weight;
  if (weight == 0)
    return;
  in_flight_ += weight;
  flight_.push_back({end, weight});
}

void descriptor_backlog::read_up_to(std::uint64_t position) {
  while (!flight_.empty() && flight_.front().end <= position) {
    in_flight_ -= flight_.front().weight;
    flight_.pop_front();
  }
}

void descriptor_backlog::clear() {
  queued_ = 0;
  in_flight_ = 0;
  flight_.clear();
}

std::size_t weight_of(const std::vector<int>& fds) {
  std::size_t total = 0;
  for (int fd : fds) {
    struct stat st {};
    if (::fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0)
      total += static_cast<std::size_t>(st.st_size);
  }
  return total;
}

std::size_t unread_by_peer(int fd) {
  int unread = 0;
  if (::ioctl(fd, SIOCOUTQ, &unread) != 0 || unread < 0)
    return 0;
  return static_cast<std::size_t>(unread);
}

} // namespace mproc::detail
