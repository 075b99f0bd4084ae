// The pool of mailbox elements (mproc/runtime/element_pool.hpp): a block freed on one
// thread serves the next allocation on another, an ending thread gives back what it held,
// and a pooled element behaves as CAF's own. Nothing else in this program uses the pool.
#include "mproc/runtime/element_pool.hpp"

#include <latch>
#include <string>
#include <thread>

#include <catch2/catch.hpp>

namespace pool = mproc::detail::element_pool;

namespace {

void* allocate_on_own_thread(std::size_t size) {
  void* p = nullptr;
  std::thread{[&] { p = pool::allocate(size); }}.join();
  return p;
}

} // namespace

#if !defined(__SANITIZE_ADDRESS__)  // under AddressSanitizer the pool is plain new/delete

TEST_CASE("a block freed by another thread serves the next allocation of its size") {
  void* first = pool::allocate(130);
  // The freeing thread lives on until the allocation: malloc would keep the block in that
  // thread's cache, out of this thread's reach.
  std::latch freed{1}, allocated{1};
  std::thread other{[&] {
    pool::release(first, 130);
    freed.count_down();
    allocated.wait();
  }};
  freed.wait();
  void* again = pool::allocate(150);  // the same size class (129..192 bytes)
  allocated.count_down();
  other.join();
  CHECK(again == first);
  pool::release(again, 150);
}

TEST_CASE("a thread that ends gives back the blocks it took and did not hand out") {
  void* a = pool::allocate(100);
  void* b = pool::allocate(100);
  pool::release(a, 100);
  pool::release(b, 100);
  // The thread takes both, hands out one and ends holding the other.
  void* used = allocate_on_own_thread(100);
  CHECK((used == a || used == b));
  void* kept = pool::allocate(100);
  CHECK(kept == (used == a ? b : a));
  pool::release(kept, 100);
  pool::release(used, 100);
}

#endif

TEST_CASE("a pooled element carries its value and gives it up as a message") {
  auto* e = new mproc::detail::pooled_element<std::string>(std::string(100, 'v'));
  caf::mailbox_element_ptr element{e};
  CHECK(element->content().get_as<std::string>(0).size() == 100);
  auto message = element->move_content_to_message();
  REQUIRE(message.match_elements<std::string>());
  CHECK(message.get_as<std::string>(0) == std::string(100, 'v'));
}
