// Catch2's implementation and main, compiled once into a static library: it is the slowest
// TU of the project.
//
// Test binaries that start processes re-run themselves as the child (libuv's habit); the
// child must become its node before Catch parses the arguments. Those binaries link
// main_node.cpp, which defines the hook below; the others leave it undefined.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

extern "C" void mproc_test_init(int argc, char** argv) __attribute__((weak));

int main(int argc, char** argv) {
  if (mproc_test_init != nullptr)
    mproc_test_init(argc, argv);
  return Catch::Session().run(argc, argv);
}
