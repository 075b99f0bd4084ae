// The seeds' Lock program in mproc: four processes print one word each under one lock, so
// no line is mixed with another. They start printing together (an Event lets them go once
// all four are there), so without the lock their letters would mix. No join: like Python,
// the root waits for its children when it ends.
//
//   Python:  lock = Lock()
//            for item in items: Process(target=printer, args=(item, lock)).start()
#include <unistd.h>

#include <string>
#include <thread>

#include <mproc/actors/event.hpp>
#include <mproc/actors/lock.hpp>
#include <mproc/runtime/node.hpp>
#include <mproc/runtime/task.hpp>

// Writes its word one letter at a time: without the lock, the four words would interleave.
void printer(std::string item, mproc::lock lock, mproc::event go) {
  go.wait();
  auto held = lock.hold();  // Python's lock.acquire() ... finally: lock.release()
  for (char c : item + "\n") {
    [[maybe_unused]] auto n = ::write(STDOUT_FILENO, &c, 1);
    std::this_thread::yield();
  }
}
MPROC_TASK(printer);

int main(int argc, char** argv) {
  mproc::node node{argc, argv};
  mproc::lock lock;
  mproc::event go;
  for (std::string item : {"chinese", "english", "spanish", "japanese"})
    node.spawn_process(printer, {}, item, lock, go);
  go.set();
}
