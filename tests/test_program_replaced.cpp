// A root whose program file is deleted or replaced while it runs (an upgrade installs a new
// binary) still starts children: they run the program the root is, not the file now at its
// path, by exec and through a fork server.
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>

#include <caf/blocking_actor.hpp>

#include <catch2/catch.hpp>

#include "mproc/runtime/actor_registry.hpp"
#include "mproc/runtime/node.hpp"
#include "support.hpp"

using namespace std::chrono_literals;

namespace {

void nothing(caf::blocking_actor*) {}

} // namespace

MPROC_ACTOR(nothing);

TEST_CASE("children start after the root's program file was deleted") {
  if (std::getenv("MPROC_TEST_FILE_DELETED") != nullptr) {  // the copy, run below
    std::filesystem::remove(std::filesystem::read_symlink("/proc/self/exe"));
    test::scoped_node node;
    for (auto how : {mproc::start_method::forkserver, mproc::start_method::exec}) {
      auto p = node->spawn_process("nothing", {.start_method = how});
      REQUIRE(p.join(20s));
      CHECK(p.exitcode() == 0);
    }
    return;
  }
  auto copy = std::filesystem::temp_directory_path()
              / ("mproc-replaced-" + std::to_string(::getpid()));
  std::filesystem::copy_file("/proc/self/exe", copy);  // with its mode: executable
  int rc = -1;
  {
    test::scoped_env as_copy{"MPROC_TEST_FILE_DELETED", "1"};
    // -w NoTests: a filter that matched nothing fails rather than passes.
    rc = std::system(
      (copy.string() + " -w NoTests 'children start after*' >/dev/null 2>&1").c_str());
  }
  std::filesystem::remove(copy);  // when the copy did not get so far
  CHECK(rc == 0);
}
