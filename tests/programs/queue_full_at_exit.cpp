// Main puts into a bounded queue nobody reads and returns: the last item can never be
// accepted. The program must still end (after giving that item up, saying so), not hang.
#include <mproc/actors/queue.hpp>
#include <mproc/runtime/node.hpp>

int main(int argc, char** argv) {
  mproc::node node{argc, argv};
  mproc::queue<int> q{node, {.maxsize = 1}};
  q.put(1);  // accepted: the queue has room for one
  q.put(2);  // held by this process; the queue never takes it
}
