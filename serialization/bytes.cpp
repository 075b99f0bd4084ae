#include "serialization/bytes.hpp"

#include <sys/mman.h>

#include <cstdint>

namespace mproc::wire {

void advise_huge_pages(void* data, std::size_t size) {
  constexpr std::uintptr_t huge = std::uintptr_t{2} << 20;
  if (size < huge_min)
    return;
  // Only whole huge pages inside the range: the advice applies to whole pages, and the
  // memory around the range may belong to someone else.
  auto begin = (reinterpret_cast<std::uintptr_t>(data) + huge - 1) & ~(huge - 1);
  auto end = (reinterpret_cast<std::uintptr_t>(data) + size) & ~(huge - 1);
  if (end > begin)
    ::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_HUGEPAGE);
}

void assign_large(bytes& out, const char* data, std::size_t size) {
  if (size < huge_min) {
    out.assign(data, data + size);
    return;
  }
  // reserve() allocates without touching the pages, so the advice comes before the faults.
  out.clear();
  out.reserve(size);
  advise_huge_pages(out.data(), size);
  out.insert(out.end(), data, data + size);
}

} // namespace mproc::wire
