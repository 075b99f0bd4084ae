// caf::message <-> wire message: a msgpack array [tag, value, tag, value, ...] whose tags
// come from the type registry (serialization/type_registry.hpp).
#pragma once

#include <string>

#include <caf/actor.hpp>
#include <caf/atom.hpp>
#include <caf/error.hpp>
#include <caf/fwd.hpp>
#include <caf/message.hpp>
#include <caf/system_messages.hpp>

#include "mproc/runtime/caf_types.hpp"
#include "mproc/serialization/codec.hpp"
#include "mproc/serialization/envelope.hpp"

namespace mproc::detail {

enum class decode_status { ok, unknown_type, bad_value };

// Adds the built-in message types to the registry; idempotent; called before a node starts.
void register_builtin_types();

// Packs the message array. False (and st.error) when an element's type has no
// registration; what was packed is then garbage and the frame must be discarded.
bool encode_message(wire::packer& pk, const caf::message& msg, wire::codec_state& st);
decode_status decode_message(const msgpack::object& o, caf::message& out, wire::codec_state& st);
// The same into a mailbox element (no sender, an asynchronous id: the caller sets both),
// a single element stored in it without a message of its own.
decode_status decode_element(const msgpack::object& o, caf::mailbox_element_ptr& out,
                             wire::codec_state& st);

// An error object as the protocol defines it: [category, code, text, context].
void encode_error(wire::packer& pk, const caf::error& e, wire::codec_state& st);
caf::error decode_error(const wire::error_view& e, wire::codec_state& st);

// The wire tag of element `i` (or its C++ name when unregistered), for error texts.
std::string tag_of(const caf::message& msg, std::size_t i);
std::string tag_of(const std::type_info& type);

} // namespace mproc::detail
