#include "mproc/serialization/bytes.hpp"

#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>

namespace mproc::wire {

namespace {

// Advice for the whole pages of size `page` inside the range: advice applies to whole
// pages, and the memory around the range may belong to someone else.
void advise_inside(void* data, std::size_t size, std::uintptr_t page, int advice) {
  auto begin = (reinterpret_cast<std::uintptr_t>(data) + page - 1) & ~(page - 1);
  auto end = (reinterpret_cast<std::uintptr_t>(data) + size) & ~(page - 1);
  if (end > begin && ::madvise(reinterpret_cast<void*>(begin), end - begin, advice) != 0
      && advice == MADV_FREE)
    ::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);  // before 4.5
}

} // namespace

void advise_huge_pages(void* data, std::size_t size) {
  if (size >= huge_min)
    advise_inside(data, size, std::uintptr_t{2} << 20, MADV_HUGEPAGE);
}

void release_pages(void* data, std::size_t size) {
  advise_inside(data, size, static_cast<std::uintptr_t>(::sysconf(_SC_PAGESIZE)), MADV_FREE);
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
