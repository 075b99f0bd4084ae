#include "mproc/runtime/element_pool.hpp"

#include <array>
#include <atomic>
#include <new>
#include <utility>

namespace mproc::detail::element_pool {

namespace {

// Sizes in steps of 64 bytes up to 256: a decoded int, string or small struct with its
// element header (96 bytes for an int, 120 for a string). Larger ones go to operator new.
constexpr std::size_t step = 64;
constexpr std::size_t classes = 4;
// About how many freed blocks wait per size, beyond which they go back to operator delete:
// a burst of queued messages does not pin its peak for ever. Approximate: the count starts
// again when a thread takes the stack, and each allocating thread may hold about as many
// again until it allocates them.
constexpr std::size_t kept = 4096;

struct block {
  block* next;
};

// Where every thread returns blocks. Pushing is a compare-and-swap; taking swaps the whole
// stack out, so no popped node is ever re-read (no ABA).
struct returned_blocks {
  alignas(64) std::atomic<block*> top{nullptr};
  std::atomic<std::size_t> count{0};  // approximate: only a bound on what is kept
};

std::array<returned_blocks, classes> returned;

void push(returned_blocks& to, block* first, block* last) noexcept {
  last->next = to.top.load(std::memory_order_relaxed);
  while (!to.top.compare_exchange_weak(last->next, first, std::memory_order_release,
                                       std::memory_order_relaxed)) {
  }
}

// What an allocating thread took from `returned` and has not handed out yet. An ending
// thread gives it back; whatever that thread allocates after (from another thread-local's
// destructor) comes from operator new.
struct thread_cache {
  std::array<block*, classes> free{};

  ~thread_cache();
};

thread_local thread_cache cache;
thread_local bool cache_gone = false;  // trivially destructible: readable to the very end

thread_cache::~thread_cache() {
  cache_gone = true;
  for (std::size_t c = 0; c < classes; ++c) {
    if (free[c] == nullptr)
      continue;
    auto* last = free[c];
    while (last->next != nullptr)
      last = last->next;
    push(returned[c], std::exchange(free[c], nullptr), last);
  }
}

std::size_t class_of(std::size_t size) {
  return (size + step - 1) / step - 1;
}

} // namespace

void* allocate(std::size_t size) {
  auto c = class_of(size);
  if (!element_pool_enabled || c >= classes)
    return ::operator new(size);
  if (cache_gone)  // the whole step: release() may keep this block for any size of its class
    return ::operator new((c + 1) * step);
  auto& free = cache.free[c];
  if (free == nullptr) {
    free = returned[c].top.exchange(nullptr, std::memory_order_acquire);
    returned[c].count.store(0, std::memory_order_relaxed);
  }
  if (free == nullptr)
    return ::operator new((c + 1) * step);
  return std::exchange(free, free->next);
}

void release(void* p, std::size_t size) noexcept {
  auto c = class_of(size);
  if (!element_pool_enabled || c >= classes
      || returned[c].count.fetch_add(1, std::memory_order_relaxed) >= kept) {
    ::operator delete(p);
    return;
  }
  auto* b = static_cast<block*>(p);
  push(returned[c], b, b);
}

} // namespace mproc::detail::element_pool
