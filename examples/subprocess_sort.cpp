// The seeds' subprocess programs in mproc, with local commands instead of nslookup: call a
// program and print its exit code, then feed one through communicate and print its output.
//
//   Python:  r = subprocess.call(["echo", "hello from a command"]); print("Exit code", r)
//            p = subprocess.Popen(["sort"], stdin=PIPE, stdout=PIPE, stderr=PIPE)
//            output, err = p.communicate(b"pear\napple\nfig\n")
//            print(output.decode("utf-8"), end=""); print("Exit code", p.returncode)
#include <cstdio>

#include <mproc/actors/subprocess.hpp>
#include <mproc/runtime/node.hpp>

namespace sp = mproc::subprocess;

int main(int argc, char** argv) {
  mproc::node node{argc, argv};
  std::printf("$ echo hello from a command\n");
  std::fflush(stdout);  // the command writes to the same stdout: ours first
  int r = sp::call({"echo", "hello from a command"});
  std::printf("Exit code %d\n", r);

  std::printf("$ sort\n");
  sp::popen p{{"sort"}, {.stdin_ = sp::pipe, .stdout_ = sp::pipe, .stderr_ = sp::pipe}};
  auto [output, err] = p.communicate("pear\napple\nfig\n");
  std::printf("%s", output.c_str());
  std::printf("Exit code %d\n", *p.returncode());
}
