// Descriptors passed over a Unix socket (SCM_RIGHTS): for links and for the fork server.
#pragma once

#include <sys/socket.h>

#include <vector>

namespace mproc::detail {

// Attaches `fds` to `msg` in `space`, which holds at least CMSG_SPACE(sizeof(int) *
// fds.size()) bytes aligned for cmsghdr. No descriptors: no control data.
void attach_fds(msghdr& msg, char* space, const std::vector<int>& fds);

// The descriptors `msg` carried (after recvmsg).
std::vector<int> received_fds(msghdr& msg);

// Closes every descriptor of `fds` (skipping -1: one lost on the way) and empties it.
void close_fds(std::vector<int>& fds);

} // namespace mproc::detail
