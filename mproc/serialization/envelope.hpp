// Envelopes: the msgpack arrays carried by frames (layouts in protocol.hpp and
// docs/protocol.md). Packing writes one whole frame, length prefix included; message bodies
// and error contexts are packed by the caller between begin_frame and end_frame, so no
// message is copied twice. Decoding checks every field's type and count and never throws.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "mproc/serialization/codec.hpp"
#include "mproc/serialization/protocol.hpp"

namespace mproc::wire {

// An actor on some node; node 0 stands for "no actor" (an anonymous sender).
struct actor_ref {
  std::uint64_t node = 0;
  std::uint64_t actor = 0;
  bool empty() const { return node == 0; }
};

// Error objects on the wire: [category, code, text, context]. The category names the enum
// the code belongs to ("system", "exit", "mproc", ...); text is for humans; context is a
// message (see message_codec in the runtime) or nil.
struct error_view {
  std::string category;
  std::uint32_t code = 0;
  std::string text;
  msgpack::object context;  // nil or a message array
};

// ---- packing ---------------------------------------------------------------------------

// Reserves the length prefix; returns where the frame starts.
std::size_t begin_frame(buffer& buf);
// Patches the length prefix. Returns the payload size.
std::uint32_t end_frame(buffer& buf, std::size_t start);

// A frame being built: its buffer, first sized for a typical envelope (msgpack's default of
// 8 KiB would be a heap allocation outside the thread cache for every message), with the
// length prefix reserved. Pack the envelope into `buf` (a message with state(), so large
// payloads are borrowed rather than copied), then end_frame(frame).
struct frame_out {
  buffer buf{256};
  std::size_t start = begin_frame(buf);
  std::vector<borrowed_span> borrowed;  // in the order of their `at`
  std::shared_ptr<const void> keep;     // owns what `borrowed` points into
  std::vector<int> fds;                 // descriptors it carries, owned (closed if unsent)
  std::vector<std::function<void(bool)>> settle;  // see codec_state::settle

  frame_out() = default;
  frame_out(frame_out&&) = default;
  frame_out& operator=(frame_out&&) = delete;
  ~frame_out();

  // With `descriptors`: values may add descriptors to the frame (a local link only).
  // For what goes inside the envelope's array (depth 1).
  codec_state state(context* ctx, bool descriptors = false) {
    return {ctx, {}, &borrowed, &buf, descriptors ? &fds : nullptr, &settle, 1};
  }
  // Runs the settle steps once: `sent` when the link took the frame. The destructor runs
  // them with false if nobody did.
  void settled(bool sent);
  // The frame's payload size: what `buf` holds after the prefix and every borrowed span.
  std::size_t payload_size() const;
};

// Patches the length prefix of a frame_out whose payload size fits the prefix.
void end_frame(frame_out& frame);
// Puts an fds frame (its count: frame.fds.size()) before the ended frame in its buffer, so
// both go out in one write that carries the descriptors.
void prepend_fds_frame(frame_out& frame);

void pack_hello(buffer&, std::uint64_t node, std::int64_t pid, std::string_view name,
                std::uint32_t max_frame);
// The caller packs the arguments (a message) next.
void pack_spawn_head(buffer&, std::uint64_t request, std::string_view actor, bool main);
void pack_spawned(buffer&, std::uint64_t request, actor_ref actor);
// The caller packs the error (pack_error_head + context) next.
void pack_spawn_failed_head(buffer&, std::uint64_t request);
// The caller packs the message next.
void pack_send_head(buffer&, actor_ref to, actor_ref from);
void pack_request_head(buffer&, actor_ref to, actor_ref from, std::uint64_t request);
// The caller packs the message (ok) or the error (!ok) next.
void pack_response_head(buffer&, actor_ref to, actor_ref from, std::uint64_t request, bool ok);
void pack_monitor(buffer&, actor_ref actor);
// The caller packs the reason (an error or nil) next.
void pack_down_head(buffer&, actor_ref actor);
void pack_heartbeat(buffer&);
void pack_fds(buffer&, std::uint32_t count);
void pack_shutdown(buffer&, std::string_view reason);
void pack_lookup(buffer&, std::uint64_t request, std::string_view name);
void pack_found(buffer&, std::uint64_t request, actor_ref actor);
// The caller packs the error next.
void pack_not_found_head(buffer&, std::uint64_t request);
// The caller packs the context (a message or nil) next.
void pack_error_head(buffer&, std::string_view category, std::uint32_t code,
                     std::string_view text);

// ---- decoded envelopes -----------------------------------------------------------------
// msgpack::object members point into the frame's payload and the decoder's zone: they are
// valid while the decoded_envelope and the payload it came from are.

struct hello_env {
  std::uint32_t version;
  std::uint64_t node;
  std::int64_t pid;
  std::string name;
  std::uint32_t max_frame;
};
struct spawn_env {
  std::uint64_t request;
  std::string actor;
  bool main;             // the actor whose end ends the process
  msgpack::object args;  // a message
};
struct spawned_env {
  std::uint64_t request;
  bool ok;
  actor_ref actor;    // if ok
  error_view error;   // if !ok
};
struct send_env {
  actor_ref to, from;
  msgpack::object message;
};
struct request_env {
  actor_ref to, from;
  std::uint64_t request;
  msgpack::object message;
};
struct response_env {
  actor_ref to, from;
  std::uint64_t request;
  bool ok;
  msgpack::object message;  // if ok
  error_view error;         // if !ok
};
struct monitor_env {
  actor_ref actor;
};
struct down_env {
  actor_ref actor;
  std::optional<error_view> reason;  // nullopt: a normal exit
};
struct heartbeat_env {};
struct fds_env {
  std::uint32_t count;
};
struct shutdown_env {
  std::string reason;
};
struct lookup_env {
  std::uint64_t request;
  std::string name;
};
struct found_env {
  std::uint64_t request;
  bool ok;
  actor_ref actor;   // if ok
  error_view error;  // if !ok
};

using envelope = std::variant<hello_env, spawn_env, spawned_env, send_env, request_env,
                              response_env, monitor_env, down_env, heartbeat_env, shutdown_env,
                              lookup_env, found_env, fds_env>;

struct decoded_envelope {
  msgpack::object_handle handle;
  envelope env;
};

// Parses one frame payload. On failure returns false and says why in `error`.
bool decode_envelope(std::string_view payload, decoded_envelope& out, std::string& error);
// The same into `zone`, cleared first and reused frame after frame (an 8 KiB allocation per
// frame otherwise): the envelope's objects live until the zone's next use, and point into
// `payload` for strings and binaries.
bool decode_envelope(std::string_view payload, msgpack::zone& zone, envelope& out,
                     std::string& error);

// Parses an error object (also used for error contexts nested in messages).
bool decode_error(const msgpack::object& o, error_view& out, std::string& error);

} // namespace mproc::wire
