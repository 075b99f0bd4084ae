// The registry of message types: which C++ types may cross the wire, under which tag.
//
// Filled during static initialisation (MPROC_MESSAGE and the runtime's built-ins) and frozen
// when the first node starts, after which it is read without locks from any thread. Decoding
// hands each value to a caller-supplied sink (the runtime passes a caf::message_builder), so
// this layer knows nothing about CAF.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <string_view>
#include <typeindex>
#include <unordered_map>
#include <vector>

#include "mproc/serialization/codec.hpp"

namespace mproc::wire {

struct type_entry {
  std::string name;  // the wire tag
  std::type_index type;
  void (*encode)(packer&, const void* value, codec_state&);
  // Decodes one value of this type and appends it to `sink`.
  bool (*decode)(const msgpack::object&, codec_state&, void* sink);
};

// Sink must have `append(T&&)`.
template <class T, class Sink>
type_entry make_type_entry() {
  return {codec<T>::name(), typeid(T),
          [](packer& pk, const void* value, codec_state& st) {
            codec<T>::encode(pk, *static_cast<const T*>(value), st);
          },
          [](const msgpack::object& o, codec_state& st, void* sink) {
            T value = blank_value<T>();
            if (!codec<T>::decode(o, value, st))
              return false;
            static_cast<Sink*>(sink)->append(std::move(value));
            return true;
          }};
}

class type_registry {
public:
  // Adds `entry`; adding the same type twice is harmless. Throws std::logic_error when the
  // tag is taken by another type, or when the registry is already frozen.
  void add(type_entry entry);

  const type_entry* find(std::type_index type) const;
  const type_entry* find(std::string_view tag) const;

  // After this, add() throws: lookups run concurrently without locks.
  void freeze() { frozen_ = true; }
  bool frozen() const { return frozen_; }

  std::vector<std::string> tags() const;

private:
  struct string_hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };

  std::vector<std::unique_ptr<type_entry>> entries_;
  std::unordered_map<std::type_index, const type_entry*> by_type_;
  std::unordered_map<std::string, const type_entry*, string_hash, std::equal_to<>> by_tag_;
  mutable std::atomic<const type_entry*> last_found_{nullptr};  // see find(tag)
  bool frozen_ = false;
};

// The process-wide registry.
type_registry& types();

// Human-readable name of a C++ type, for errors about types nobody registered.
std::string demangle(const char* mangled_name);

} // namespace mproc::wire
