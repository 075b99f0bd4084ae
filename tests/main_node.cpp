// Linked (whole) into test binaries that start processes: see catch_impl.cpp.
#include "mproc/runtime/node.hpp"

#include <sched.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

#include "mproc/runtime/internal/spawner.hpp"
#include "mproc/serialization/envelope.hpp"

namespace {

// A child that breaks the protocol, for the tests of how a node survives one: a length
// header announcing a frame, then bytes that are not msgpack; or a well-formed hello that
// announces a maximum frame below the protocol's minimum.
void misbehave_if_asked(int argc, char** argv) {
  if (argc < 2 || std::strcmp(argv[1], mproc::detail::child_flag) != 0)
    return;
  if (std::getenv("MPROC_TEST_CHILD_WRITES_GARBAGE") != nullptr) {
    const char garbage[] = "\x00\x00\x00\x05\xc1\xc1\xc1\xc1\xc1";
    [[maybe_unused]] auto n = ::write(mproc::detail::child_link_fd, garbage, sizeof garbage - 1);
  } else if (std::getenv("MPROC_TEST_CHILD_TINY_MAX_FRAME") != nullptr) {
    mproc::wire::buffer buf;
    auto start = mproc::wire::begin_frame(buf);
    mproc::wire::pack_hello(buf, 77, ::getpid(), "tiny", 16);
    mproc::wire::end_frame(buf, start);
    [[maybe_unused]] auto n = ::write(mproc::detail::child_link_fd, buf.data(), buf.size());
  } else {
    return;
  }
  ::sleep(10);  // the parent must cut us off, not wait for us
  ::_exit(3);
}

// MPROC_TEST_ONE_CPU: the suite runs confined to one CPU, where blocking callers lead the
// node's loop themselves (io_loop.hpp). Before anything asks how many CPUs there are.
void one_cpu_if_asked() {
  if (std::getenv("MPROC_TEST_ONE_CPU") == nullptr)
    return;
  cpu_set_t allowed;
  CPU_ZERO(&allowed);
  if (sched_getaffinity(0, sizeof allowed, &allowed) != 0)
    return;
  for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu)
    if (CPU_ISSET(cpu, &allowed)) {
      cpu_set_t one;
      CPU_ZERO(&one);
      CPU_SET(cpu, &one);
      sched_setaffinity(0, sizeof one, &one);
      return;
    }
}

} // namespace

extern "C" void mproc_test_init(int argc, char** argv) {
  one_cpu_if_asked();
  misbehave_if_asked(argc, argv);
  // Children with the root's own small max_frame, for tests that set one (init's options
  // are what a program's children run with).
  mproc::node_options options;
  if (const char* max_frame = std::getenv("MPROC_TEST_MAX_FRAME"))
    options.max_frame = static_cast<std::uint32_t>(std::strtoul(max_frame, nullptr, 10));
  mproc::init(argc, argv, options);  // in a child: runs the child node and never returns
}
