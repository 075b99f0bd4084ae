// The node of an unordered_map's entry taken out last, kept for the next entry put in.
//
// A map with an entry per request in flight (the requester's calls, a peer's requests)
// allocates and frees a node per round trip; with one kept aside it allocates none once
// warm (perf probe on malloc: 2 of the ~11 allocations a parent made per pinned pingpong
// trip). Used under the lock that guards the map.
#pragma once

#include <utility>

namespace mproc::detail {

template <class Map>
class spare_node {
public:
  // map[key] = value, in the spare node if there is one.
  template <class K, class V>
  void put(Map& map, K&& key, V&& value) {
    if (spare_.empty()) {
      map.insert_or_assign(std::forward<K>(key), std::forward<V>(value));
      return;
    }
    spare_.key() = std::forward<K>(key);
    spare_.mapped() = std::forward<V>(value);
    typename Map::insert_return_type result;
    try {
      result = map.insert(std::move(spare_));  // a rehash may throw: the node stays spare
    } catch (...) {
      spare_.mapped() = {};  // what it holds (an actor reference) is not kept alive
      throw;
    }
    if (!result.inserted) {
      result.position->second = std::move(result.node.mapped());
      spare_ = std::move(result.node);
    }
  }

  // map.erase(at), keeping the node. What its value still holds lives on until the next
  // put: move the value out first when that matters.
  void take(Map& map, typename Map::iterator at) {
    if (spare_.empty())
      spare_ = map.extract(at);
    else
      map.erase(at);
  }

private:
  typename Map::node_type spare_;
};

} // namespace mproc::detail
