#include "mproc/serialization/envelope_head.hpp"

namespace mproc::wire {

namespace {

// A forward-only reader of the two msgpack shapes a head holds.
class cursor {
public:
  explicit cursor(std::string_view bytes) : p_(bytes.data()), end_(bytes.data() + bytes.size()) {}

  // A fixarray header (at most 15 elements, all an envelope needs).
  bool fixarray(std::uint32_t& n) {
    if (p_ == end_ || (byte(0) & 0xf0u) != 0x90u)
      return false;
    n = byte(0) & 0x0fu;
    ++p_;
    return true;
  }

  // A positive fixint or uint 8/16/32/64 (big-endian), as msgpack packers write unsigned
  // values. Signed encodings of non-negative values are legal too; they go the long way.
  bool uint(std::uint64_t& v) {
    if (p_ == end_)
      return false;
    unsigned first = byte(0);
    if (first <= 0x7fu) {
      v = first;
      ++p_;
      return true;
    }
    std::size_t n = first == 0xccu ? 1 : first == 0xcdu ? 2 : first == 0xceu ? 4 : first == 0xcfu ? 8 : 0;
    if (n == 0 || static_cast<std::size_t>(end_ - p_) < n + 1)
      return false;
    v = 0;
    for (std::size_t i = 1; i <= n; ++i)
      v = (v << 8) | byte(i);
    p_ += n + 1;
    return true;
  }

  bool ref(actor_ref& r) { return uint(r.node) && uint(r.actor); }

  const char* at() const { return p_; }

private:
  unsigned byte(std::size_t i) const { return static_cast<unsigned char>(p_[i]); }

  const char* p_;
  const char* end_;
};

} // namespace

bool read_message_head(std::string_view payload, message_head& out) {
  cursor c{payload};
  std::uint32_t fields = 0;
  std::uint64_t k = 0;
  if (!c.fixarray(fields) || !c.uint(k))
    return false;
  bool send = k == static_cast<std::uint64_t>(kind::send) && fields == 6;
  bool request = k == static_cast<std::uint64_t>(kind::request) && fields == 7;
  if ((!send && !request) || !c.ref(out.to) || !c.ref(out.from))
    return false;
  out.k = send ? kind::send : kind::request;
  out.request = 0;
  if (request && !c.uint(out.request))
    return false;
  out.message_at = static_cast<std::size_t>(c.at() - payload.data());
  return true;
}

} // namespace mproc::wire
