// How CAF's own types cross the wire: atoms, actor references, errors, exit messages.
// Public, so that codecs of other types (a queue handle, say) can contain them. The
// definitions live in runtime/internal/message_codec.cpp.
#pragma once

#include <string>

#include <caf/actor.hpp>
#include <caf/atom.hpp>
#include <caf/error.hpp>
#include <caf/fwd.hpp>
#include <caf/system_messages.hpp>

#include "mproc/serialization/codec.hpp"
#include "mproc/serialization/envelope.hpp"

namespace mproc::wire {

// Turns local actors into wire references and wire references into local handles. One
// context exists per link, since a reference's proxy forwards over the link it came from.
class context {
public:
  virtual ~context() = default;
  virtual actor_ref export_actor(const caf::strong_actor_ptr& actor) = 0;
  virtual caf::strong_actor_ptr import_actor(actor_ref ref) = 0;
  virtual caf::actor_system& system() = 0;
};

template <>
struct codec<caf::atom_value> {
  static std::string name() { return "atom"; }
  static void encode(packer& pk, caf::atom_value x, codec_state& st);
  static bool decode(const msgpack::object& o, caf::atom_value& out, codec_state& st);
};

template <>
struct codec<caf::strong_actor_ptr> {
  static std::string name() { return "actor_ptr"; }
  static void encode(packer& pk, const caf::strong_actor_ptr& x, codec_state& st);
  static bool decode(const msgpack::object& o, caf::strong_actor_ptr& out, codec_state& st);
};

template <>
struct codec<caf::actor> {
  static std::string name() { return "actor"; }
  static void encode(packer& pk, const caf::actor& x, codec_state& st);
  static bool decode(const msgpack::object& o, caf::actor& out, codec_state& st);
};

template <>
struct codec<caf::error> {
  static std::string name() { return "error"; }
  static void encode(packer& pk, const caf::error& x, codec_state& st);
  static bool decode(const msgpack::object& o, caf::error& out, codec_state& st);
};

// What send_exit() sends: [source actor or nil, reason error or nil]. Crossing processes
// lets `send_exit(proxy, reason)` stop an actor in another process, as it would locally.
template <>
struct codec<caf::exit_msg> {
  static std::string name() { return "exit"; }
  static void encode(packer& pk, const caf::exit_msg& x, codec_state& st);
  static bool decode(const msgpack::object& o, caf::exit_msg& out, codec_state& st);
};

} // namespace mproc::wire

