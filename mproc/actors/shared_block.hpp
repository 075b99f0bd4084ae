// What shared_value and shared_array have in common: a block of shared memory
// (actors/segment.hpp) holding their bytes and, when synchronized, the rlock that guards
// them. Internal to actors/, included by those two templates.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <typeinfo>

#include "mproc/actors/guard.hpp"
#include "mproc/actors/lock.hpp"
#include "mproc/serialization/codec.hpp"

namespace mproc::detail {

class segment;

class shared_block {
public:
  enum class kind : std::uint32_t { value, array };

  shared_block() = default;  // empty (a value being decoded)
  // `bytes` zeroed bytes for `type` (typeid(T).name()), with an rlock if `synchronized`.
  shared_block(kind k, const char* type, std::size_t bytes, bool synchronized);

  // Throw bad_arguments for an empty (moved-from, being decoded) block.
  void* data() const {
    if (!seg_)
      throw_misuse("an empty shared_value or shared_array handle (moved from?)");
    return data_;
  }
  std::size_t size() const { return seg_ ? size_ : 0; }
  // The guarding lock; throws bad_arguments when made without one, or for an empty block.
  const rlock& lock() const;
  // The lock for one get or set of the templates (none when not synchronized). One taken
  // from a holder that died holding it is logged, naming `what`: the data may be
  // half-written, and get/set have no owner_died to say so.
  std::optional<guard<rlock>> hold(const char* what) const;
  bool synchronized() const { return lock_.has_value(); }

  void encode(wire::packer& pk, wire::codec_state& st, const char* what) const;
  // Accepts a block of `k` for `type` whose size is a multiple of `element_size`.
  bool decode(const msgpack::object& o, wire::codec_state& st, kind k, const char* type,
              std::size_t element_size, const char* what);

private:
  std::shared_ptr<segment> seg_;
  std::optional<rlock> lock_;
  void* data_ = nullptr;
  std::size_t size_ = 0;
};

// The rlock of a Value's or Array's block that came on the wire (an rlock from get_lock()
// travels as its whole block, of kind `k`, whatever the data's type): false (st.fail) for a
// block without a lock.
bool decode_block_lock(const msgpack::object& o, wire::codec_state& st, shared_block::kind k,
                       std::optional<rlock>& out);

// "shared_value<double>": the wire tag of a shared_value or shared_array of `type`.
std::string shared_tag(const char* prefix, const char* type);

} // namespace mproc::detail
