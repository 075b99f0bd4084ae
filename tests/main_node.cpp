// Linked (whole) into test binaries that start processes: see catch_impl.cpp.
#include "mproc/runtime/node.hpp"

#include <unistd.h>

#include <cstdlib>
#include <cstring>

#include "mproc/runtime/internal/spawner.hpp"

namespace {

// A child that breaks the protocol, for the tests of how a node survives one: a length
// header announcing a frame, then bytes that are not msgpack.
void misbehave_if_asked(int argc, char** argv) {
  if (std::getenv("MPROC_TEST_CHILD_WRITES_GARBAGE") == nullptr || argc < 2
      || std::strcmp(argv[1], mproc::detail::child_flag) != 0)
    return;
  const char garbage[] = "\x00\x00\x00\x05\xc1\xc1\xc1\xc1\xc1";
  [[maybe_unused]] auto n = ::write(mproc::detail::child_link_fd, garbage, sizeof garbage - 1);
  ::sleep(10);  // the parent must cut us off, not wait for us
  ::_exit(3);
}

} // namespace

extern "C" void mproc_test_init(int argc, char** argv) {
  misbehave_if_asked(argc, argv);
  mproc::init(argc, argv);  // in a child: runs the child node and never returns
}
