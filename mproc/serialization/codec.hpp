// Value codec: how one C++ value becomes a msgpack value and back, and what its wire tag is.
//
// Every sendable type T has a `codec<T>` with
//   static std::string name();                                  // wire tag: "i32", "vec<str>", "job"
//   static void encode(packer&, const T&, codec_state&);
//   static bool decode(const msgpack::object&, T&, codec_state&); // false + state.error on failure
// Decoding never throws and never trusts the input: wrong types, out-of-range integers and
// wrong shapes become an error text naming the path to the bad value.
//
// Built-ins live in codec_scalars.hpp, codec_containers.hpp and codec_struct.hpp, all
// included here. User structs become sendable through MSGPACK_DEFINE plus a name
// (see runtime/message_types.hpp). Actor references are a runtime concern: the runtime
// specialises codec<caf::actor> using the opaque `context` (codec_scalars.hpp).
#pragma once
#include "mproc/serialization/codec_scalars.hpp"
#include "mproc/serialization/codec_containers.hpp"
#include "mproc/serialization/codec_struct.hpp"
