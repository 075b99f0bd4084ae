// The spare node of a map with an entry per request in flight (runtime/internal/spare_node.hpp):
// an entry put after one was taken out lives in the node taken out (no allocation), a put
// on a key already there replaces its value, and a node kept aside holds nothing once its
// value was moved out.
#include "mproc/runtime/internal/spare_node.hpp"

#include <memory>
#include <string>
#include <unordered_map>

#include <catch2/catch.hpp>

using mproc::detail::spare_node;

namespace {

// Counts what a map allocates (its nodes and bucket arrays), which malloc's own reuse of a
// freed block would hide from a comparison of addresses.
std::size_t allocations = 0;

template <class T>
struct counting_allocator {
  using value_type = T;
  counting_allocator() = default;
  template <class U>
  counting_allocator(const counting_allocator<U>&) {}
  T* allocate(std::size_t n) {
    ++allocations;
    return std::allocator<T>{}.allocate(n);
  }
  void deallocate(T* p, std::size_t n) { std::allocator<T>{}.deallocate(p, n); }
  template <class U>
  bool operator==(const counting_allocator<U>&) const { return true; }
};

using counted_map = std::unordered_map<int, std::string, std::hash<int>, std::equal_to<int>,
                                       counting_allocator<std::pair<const int, std::string>>>;

} // namespace

TEST_CASE("an entry put after one was taken out allocates nothing") {
  counted_map map;
  spare_node<counted_map> spare;
  spare.put(map, 1, "first");
  spare.take(map, map.find(1));
  REQUIRE(map.empty());
  auto before = allocations;
  spare.put(map, 2, "second");
  REQUIRE(map.size() == 1);
  CHECK(map.at(2) == "second");
  CHECK(allocations == before);
}

TEST_CASE("a put on a key already there replaces its value and keeps the spare node") {
  counted_map map;
  spare_node<counted_map> spare;
  spare.put(map, 1, "old");
  spare.put(map, 2, "other");
  spare.take(map, map.find(2));  // a spare node now: the next put goes through it
  spare.put(map, 1, "new");
  REQUIRE(map.size() == 1);
  CHECK(map.at(1) == "new");
  auto before = allocations;
  spare.put(map, 3, "third");  // in the node the failed insert gave back
  CHECK(map.size() == 2);
  CHECK(map.at(3) == "third");
  CHECK(allocations == before);
}

TEST_CASE("a node kept aside holds nothing once its value was moved out") {
  std::unordered_map<int, std::shared_ptr<int>> map;
  spare_node<std::unordered_map<int, std::shared_ptr<int>>> spare;
  auto held = std::make_shared<int>(7);
  spare.put(map, 1, held);
  REQUIRE(held.use_count() == 2);
  auto at = map.find(1);
  auto taken = std::move(at->second);  // as the peer does before taking the entry out
  spare.take(map, at);
  taken.reset();
  CHECK(held.use_count() == 1);
}

TEST_CASE("a taken entry whose value is not moved out stays alive until the next put") {
  std::unordered_map<int, std::shared_ptr<int>> map;
  spare_node<std::unordered_map<int, std::shared_ptr<int>>> spare;
  auto held = std::make_shared<int>(7);
  spare.put(map, 1, held);
  spare.take(map, map.find(1));
  CHECK(held.use_count() == 2);  // what take() says: move the value out first if it matters
  spare.put(map, 2, std::make_shared<int>(8));
  CHECK(held.use_count() == 1);
}
