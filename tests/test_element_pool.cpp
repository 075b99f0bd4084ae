// The pool of mailbox elements (mproc/runtime/element_pool.hpp): a block freed on one
// thread serves the next allocation on another, an ending thread gives back what it held,
// a pooled element's block comes back when CAF deletes it, and the element behaves as CAF's
// own. The pool's state carries from case to case: each leaves this thread's lists empty.
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

// Runs `free` on another thread that lives on until this thread allocated `size` bytes, and
// returns that allocation: malloc would keep what the other thread freed in that thread's
// cache, out of this thread's reach, so only the pool can hand the same block back here.
template <class Free>
void* allocate_after_freed_elsewhere(Free free, std::size_t size) {
  std::latch freed{1}, allocated{1};
  std::thread other{[&] {
    free();
    freed.count_down();
    allocated.wait();
  }};
  freed.wait();
  void* p = pool::allocate(size);
  allocated.count_down();
  other.join();
  return p;
}

} // namespace

TEST_CASE("a block freed by another thread serves the next allocation of its size") {
  if (!mproc::detail::element_pool_enabled)
    return;  // under AddressSanitizer the pool is plain new and delete: nothing comes back
  void* first = pool::allocate(130);
  // The same size class (129..192 bytes).
  void* again = allocate_after_freed_elsewhere([&] { pool::release(first, 130); }, 150);
  CHECK(again == first);
  pool::release(again, 150);
}

TEST_CASE("an element CAF deletes on another thread gives its block back to the pool") {
  if (!mproc::detail::element_pool_enabled)
    return;  // under AddressSanitizer the pool is plain new and delete: nothing comes back
  using element = mproc::detail::pooled_element<std::int32_t>;
  auto* e = new element(std::int32_t{7});
  void* block = e;
  caf::mailbox_element_ptr mail{e};
  void* again = allocate_after_freed_elsewhere([&] { mail.reset(); }, sizeof(element));
  CHECK(again == block);
  pool::release(again, sizeof(element));
}

TEST_CASE("a thread that ends gives back the blocks it took and did not hand out") {
  if (!mproc::detail::element_pool_enabled)
    return;  // under AddressSanitizer the pool is plain new and delete: nothing comes back
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

TEST_CASE("a pooled element carries its value and gives it up as a message") {
  auto* e = new mproc::detail::pooled_element<std::string>(std::string(100, 'v'));
  caf::mailbox_element_ptr element{e};
  CHECK(element->content().get_as<std::string>(0).size() == 100);
  auto message = element->move_content_to_message();
  REQUIRE(message.match_elements<std::string>());
  CHECK(message.get_as<std::string>(0) == std::string(100, 'v'));
}
