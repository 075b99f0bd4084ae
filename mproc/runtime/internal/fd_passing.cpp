#include "mproc/runtime/internal/fd_passing.hpp"

#include <unistd.h>

#include <cstring>

namespace mproc::detail {

void attach_fds(msghdr& msg, char* space, const std::vector<int>& fds) {
  if (fds.empty())
    return;
  msg.msg_control = space;
  msg.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
  auto* c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
  std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
}

std::vector<int> received_fds(msghdr& msg) {
  std::vector<int> out;
  for (auto* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
      continue;
    auto count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (std::size_t i = 0; i < count; ++i) {
      int fd;
      std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
      out.push_back(fd);
    }
  }
  return out;
}

void close_fds(std::vector<int>& fds) {
  for (int fd : fds)
    if (fd >= 0)
      ::close(fd);
  fds.clear();
}

} // namespace mproc::detail
