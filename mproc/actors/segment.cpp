#include "mproc/actors/segment.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <limits>
#include <utility>

#include "mproc/runtime/errors.hpp"
#include "mproc/serialization/protocol.hpp"

namespace mproc::detail {

namespace {

// The first bytes of every block. The payload starts a cache line further, so the first
// atomic of a primitive does not share a line with the header that everyone reads.
struct header {
  std::uint32_t magic;
  std::uint32_t kind;
  std::uint64_t payload_size;
  std::uint64_t type_tag;
};
constexpr std::uint32_t segment_magic = 0x6d707367;  // "mpsg"
constexpr std::size_t payload_offset = 64;
static_assert(sizeof(header) <= payload_offset);

constexpr unsigned int wanted_seals = F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL;

[[noreturn]] void fail(const std::string& what) {
  throw mproc::error{make_error(errc::bad_arguments, what), what};
}

void* map(int fd, std::size_t size) {
  void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  return p == MAP_FAILED ? nullptr : p;
}

} // namespace

std::shared_ptr<segment> segment::own(int fd, void* base, std::size_t mapped,
                                      std::size_t payload_size) {
  segment* s = nullptr;
  try {
    s = new segment{fd, base, mapped, payload_size};
  } catch (...) {  // out of memory: the mapping and descriptor would stay for good
    ::munmap(base, mapped);
    ::close(fd);
    throw;
  }
  return std::shared_ptr<segment>{s};  // its own failure deletes s, which unmaps
}

segment::segment(int fd, void* base, std::size_t mapped, std::size_t payload_size)
    : fd_{fd}, base_{base}, mapped_{mapped},
      payload_{static_cast<char*>(base) + payload_offset}, payload_size_{payload_size} {}

segment::~segment() {
  ::munmap(base_, mapped_);
  ::close(fd_);
}

std::shared_ptr<segment> segment::create(segment_kind kind, std::size_t payload_size,
                                         std::uint64_t type_tag) {
  // A size near SIZE_MAX (a negative count converted) would wrap the total to a few bytes
  // while the header recorded the huge size: refused, as Python refuses a negative one.
  constexpr auto largest = static_cast<std::size_t>(std::numeric_limits<off_t>::max())
                           - payload_offset;
  if (payload_size > largest)
    fail("shared memory of " + std::to_string(payload_size) + " bytes: more than "
         + std::to_string(largest) + " (a negative size converted?)");
  int fd = ::memfd_create("mproc", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd < 0)
    fail(std::string{"cannot create shared memory: "} + std::strerror(errno));
  std::size_t total = payload_offset + (payload_size == 0 ? 1 : payload_size);
  void* base = nullptr;
  if (::ftruncate(fd, static_cast<off_t>(total)) != 0
      || ::fcntl(fd, F_ADD_SEALS, wanted_seals) != 0 || (base = map(fd, total)) == nullptr) {
    int e = errno;
    ::close(fd);
    fail("cannot create " + std::to_string(payload_size) + " bytes of shared memory: "
         + std::strerror(e));
  }
  auto* h = static_cast<header*>(base);
  *h = {segment_magic, static_cast<std::uint32_t>(kind), payload_size, type_tag};
  return own(fd, base, total, payload_size);
}

std::shared_ptr<segment> segment::adopt(int fd, segment_kind kind,
                                        std::optional<std::uint64_t> type_tag, std::string& why) {
  struct stat st{};
  int seals = ::fcntl(fd, F_GET_SEALS);
  if (::fstat(fd, &st) != 0 || seals < 0
      || (static_cast<unsigned>(seals) & (F_SEAL_SHRINK | F_SEAL_GROW))
             != (F_SEAL_SHRINK | F_SEAL_GROW)
      || static_cast<std::size_t>(st.st_size) <= payload_offset) {
    ::close(fd);
    why = "the descriptor is not mproc shared memory";
    return nullptr;
  }
  auto total = static_cast<std::size_t>(st.st_size);
  void* base = map(fd, total);
  if (base == nullptr) {
    why = std::string{"cannot map shared memory: "} + std::strerror(errno);
    ::close(fd);
    return nullptr;
  }
  header h;
  std::memcpy(&h, base, sizeof h);
  auto s = own(fd, base, total, 0);  // unmaps on every return
  if (h.magic != segment_magic || h.kind != static_cast<std::uint32_t>(kind)
      || (type_tag && h.type_tag != *type_tag) || h.payload_size > total - payload_offset) {
    why = "the shared memory holds another kind of object";
    return nullptr;
  }
  s->payload_size_ = h.payload_size;
  return s;
}

std::uint64_t type_tag_of(const std::string& type_name) {
  std::uint64_t h = 0xcbf29ce484222325u;
  for (unsigned char c : type_name)
    h = (h ^ c) * 0x100000001b3u;
  return h;
}

void encode_segment(wire::packer& pk, const segment* s, wire::codec_state& st,
                    const char* what) {
  auto refuse = [&](const std::string& why) {
    st.fail(std::string{what} + ": " + why);
    pk.pack_nil();
  };
  if (s == nullptr)
    return refuse("an empty handle");
  if (st.descriptors == nullptr)
    return refuse("shared memory goes only to a process on this machine, as a spawn argument "
                  "or in a message (not to another machine, not inside a queue item)");
  if (st.descriptors->size() >= wire::max_fds_per_frame)
    return refuse("a message carries at most " + std::to_string(wire::max_fds_per_frame)
                  + " descriptors");
  int copy = ::fcntl(s->fd(), F_DUPFD_CLOEXEC, 0);
  if (copy < 0)
    return refuse(std::string{"cannot duplicate its descriptor: "} + std::strerror(errno));
  auto index = static_cast<std::uint32_t>(st.descriptors->size());
  st.descriptors->push_back(copy);  // the frame owns it now, and closes it if unsent
  pk.pack_array(2);
  pk.pack(index);
  pk.pack(static_cast<const header*>(s->base())->kind);
}

std::optional<segment_kind> kind_on_wire(const msgpack::object& o) {
  if (o.type != msgpack::type::ARRAY || o.via.array.size != 2
      || o.via.array.ptr[1].type != msgpack::type::POSITIVE_INTEGER)
    return std::nullopt;
  return static_cast<segment_kind>(o.via.array.ptr[1].via.u64);
}

std::shared_ptr<segment> decode_segment(const msgpack::object& o, wire::codec_state& st,
                                        segment_kind kind, std::optional<std::uint64_t> type_tag,
                                        std::size_t min_payload, const char* what) {
  std::uint32_t index = 0;
  std::uint32_t sent_kind = 0;
  if (o.type != msgpack::type::ARRAY || o.via.array.size != 2) {
    wire::type_mismatch(st, std::string{what} + " [descriptor, kind]", o);
    return nullptr;
  }
  if (!wire::codec<std::uint32_t>::decode(o.via.array.ptr[0], index, st)
      || !wire::codec<std::uint32_t>::decode(o.via.array.ptr[1], sent_kind, st))
    return nullptr;
  auto* fds = st.descriptors;
  if (fds == nullptr || index >= fds->size() || (*fds)[index] < 0) {
    st.fail(std::string{what} + ": descriptor " + std::to_string(index)
            + " did not come with the frame");
    return nullptr;
  }
  int fd = std::exchange((*fds)[index], -1);
  std::string why;
  auto s = segment::adopt(fd, kind, type_tag, why);
  if (s && s->payload_size() < min_payload) {
    why = "the shared memory is too small";
    s.reset();
  }
  if (!s)
    st.fail(std::string{what} + ": " + why);
  return s;
}

} // namespace mproc::detail
