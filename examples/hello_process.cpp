// The seeds' first program in mproc, line for line:
//
//   def run_proc(name):
//       print('Run child process %s (%s)...' % (name, os.getpid()))
//   if __name__ == '__main__':
//       print('Parent process %s.' % os.getpid())
//       p = Process(target=run_proc, args=('test',))
//       print('Child process will start.')
//       p.start()
//       p.join()
//       print('Child process end.')
#include <unistd.h>

#include <cstdio>
#include <string>

#include <mproc/runtime/node.hpp>
#include <mproc/runtime/task.hpp>

void run_proc(std::string name) {
  std::printf("Run child process %s (%d)...\n", name.c_str(), ::getpid());
}
MPROC_TASK(run_proc);  // a target is found by name in the child

int main(int argc, char** argv) {
  mproc::node node{argc, argv};  // first: in the child this line runs run_proc, then exits

  std::printf("Parent process %d.\n", ::getpid());
  mproc::process p{node, run_proc, {}, "test"};
  std::printf("Child process will start.\n");
  p.start();  // what was printed so far goes out first, as in Python
  p.join();
  std::printf("Child process end.\n");
  return p.exitcode() == 0 ? 0 : 1;
}
