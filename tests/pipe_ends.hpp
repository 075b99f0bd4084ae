// The two ends of a socketpair as a pipe's, without a node: for the tests of one end's
// sending and receiving by itself (test_pipe, test_pipe_faults).
#pragma once

#include <sys/socket.h>

#include <memory>
#include <utility>

#include <catch2/catch.hpp>

#include "mproc/actors/pipe_socket.hpp"

namespace test {

inline std::pair<std::shared_ptr<mproc::detail::pipe_socket>,
                 std::shared_ptr<mproc::detail::pipe_socket>>
socket_ends() {
  int fds[2];
  REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) == 0);
  return {std::make_shared<mproc::detail::pipe_socket>(fds[0]),
          std::make_shared<mproc::detail::pipe_socket>(fds[1])};
}

} // namespace test
