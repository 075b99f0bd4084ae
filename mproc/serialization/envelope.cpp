// Envelopes packed into frames (envelope.hpp): a frame's header, the frame that borrows its
// large payloads, and one packing function per kind; decoding is in envelope_decode.cpp.
#include "mproc/serialization/envelope.hpp"

#include <unistd.h>

#include "mproc/serialization/frame.hpp"

namespace mproc::wire {

const char* kind_name(kind k) {
  static const char* names[kind_count] = {"hello",    "spawn",    "spawned", "send",
                                          "request",  "response", "monitor", "down",
                                          "heartbeat", "shutdown", "lookup",  "found",
                                          "fds"};
  auto i = static_cast<std::uint8_t>(k);
  return i < kind_count ? names[i] : "unknown";
}

// ---- packing ---------------------------------------------------------------------------

std::size_t begin_frame(buffer& buf) {
  static const char placeholder[frame_header_size] = {};
  auto start = buf.size();
  buf.write(placeholder, frame_header_size);
  return start;
}

std::uint32_t end_frame(buffer& buf, std::size_t start) {
  auto payload = static_cast<std::uint32_t>(buf.size() - start - frame_header_size);
  put_frame_length(buf.data() + start, payload);
  return payload;
}

std::size_t frame_out::payload_size() const {
  auto size = buf.size() - start - frame_header_size;
  for (const auto& span : borrowed)
    size += span.size;
  return size;
}

void end_frame(frame_out& frame) {
  put_frame_length(frame.buf.data() + frame.start,
                   static_cast<std::uint32_t>(frame.payload_size()));
}

frame_out::~frame_out() {
  settled(false);
  for (int fd : fds)
    ::close(fd);
}

void frame_out::settled(bool sent) {
  for (auto& step : std::exchange(settle, {}))
    step(sent);
}

void prepend_fds_frame(frame_out& frame) {
  buffer both{frame.buf.size() + 16};
  auto start = begin_frame(both);
  pack_fds(both, static_cast<std::uint32_t>(frame.fds.size()));
  end_frame(both, start);
  auto shift = both.size();
  both.write(frame.buf.data(), frame.buf.size());
  frame.buf = std::move(both);
  frame.start += shift;
  for (auto& span : frame.borrowed)
    span.at += shift;
}

namespace {

void head(packer& pk, kind k, std::uint32_t fields) {
  pk.pack_array(fields);
  pk.pack(static_cast<std::uint8_t>(k));
}

void pack_ref(packer& pk, actor_ref r) {
  pk.pack(r.node);
  pk.pack(r.actor);
}

} // namespace

void pack_hello(buffer& buf, std::uint64_t node, std::int64_t pid, std::string_view name,
                std::uint32_t max_frame) {
  packer pk{buf};
  head(pk, kind::hello, 6);
  pk.pack(protocol_version);
  pk.pack(node);
  pk.pack(pid);
  pk.pack(name);
  pk.pack(max_frame);
}

void pack_spawn_head(buffer& buf, std::uint64_t request, std::string_view actor, bool main) {
  packer pk{buf};
  head(pk, kind::spawn, 5);
  pk.pack(request);
  pk.pack(actor);
  pk.pack(main);
}

// spawned and found: [kind, request, ok, [node, actor] | error]
void pack_answer_head(buffer& buf, kind k, std::uint64_t request, bool ok) {
  packer pk{buf};
  head(pk, k, 4);
  pk.pack(request);
  pk.pack(ok);
}

void pack_answer(buffer& buf, kind k, std::uint64_t request, actor_ref actor) {
  pack_answer_head(buf, k, request, true);
  packer pk{buf};
  pk.pack_array(2);
  pack_ref(pk, actor);
}

void pack_spawned(buffer& buf, std::uint64_t request, actor_ref actor) {
  pack_answer(buf, kind::spawned, request, actor);
}

void pack_spawn_failed_head(buffer& buf, std::uint64_t request) {
  pack_answer_head(buf, kind::spawned, request, false);
}

void pack_send_head(buffer& buf, actor_ref to, actor_ref from) {
  packer pk{buf};
  head(pk, kind::send, 6);
  pack_ref(pk, to);
  pack_ref(pk, from);
}

void pack_request_head(buffer& buf, actor_ref to, actor_ref from, std::uint64_t request) {
  packer pk{buf};
  head(pk, kind::request, 7);
  pack_ref(pk, to);
  pack_ref(pk, from);
  pk.pack(request);
}

void pack_response_head(buffer& buf, actor_ref to, actor_ref from, std::uint64_t request,
                        bool ok) {
  packer pk{buf};
  head(pk, kind::response, 8);
  pack_ref(pk, to);
  pack_ref(pk, from);
  pk.pack(request);
  pk.pack(ok);
}

void pack_monitor(buffer& buf, actor_ref actor) {
  packer pk{buf};
  head(pk, kind::monitor, 3);
  pack_ref(pk, actor);
}

void pack_down_head(buffer& buf, actor_ref actor) {
  packer pk{buf};
  head(pk, kind::down, 4);
  pack_ref(pk, actor);
}

void pack_fds(buffer& buf, std::uint32_t count) {
  packer pk{buf};
  head(pk, kind::fds, 2);
  pk.pack(count);
}

void pack_heartbeat(buffer& buf) {
  packer pk{buf};
  head(pk, kind::heartbeat, 1);
}

void pack_shutdown(buffer& buf, std::string_view reason) {
  packer pk{buf};
  head(pk, kind::shutdown, 2);
  pk.pack(reason);
}

void pack_lookup(buffer& buf, std::uint64_t request, std::string_view name) {
  packer pk{buf};
  head(pk, kind::lookup, 3);
  pk.pack(request);
  pk.pack(name);
}

void pack_found(buffer& buf, std::uint64_t request, actor_ref actor) {
  pack_answer(buf, kind::found, request, actor);
}

void pack_not_found_head(buffer& buf, std::uint64_t request) {
  pack_answer_head(buf, kind::found, request, false);
}

void pack_error_head(buffer& buf, std::string_view category, std::uint32_t code,
                     std::string_view text) {
  packer pk{buf};
  pk.pack_array(4);
  pk.pack(category);
  pk.pack(code);
  pk.pack(text);
}

} // namespace mproc::wire
