#include "actors/pipe.hpp"

#include "runtime/message_bytes.hpp"
#include "runtime/message_types.hpp"
#include "runtime/node.hpp"

namespace mproc {

namespace {

// `connection` crosses processes as a spawn argument or message element.
[[maybe_unused]] const bool registered = detail::register_message_type<connection>();

caf::error no_end(const char* what) {
  return make_error(errc::bad_arguments, std::string{"this end of the pipe cannot "} + what);
}

} // namespace

connection::connection(detail::queue_core in, detail::queue_core out, std::uint8_t end)
  : in_(std::move(in)), out_(std::move(out)), end_(end) {
  if (in_.actor())
    in_.own(end_);
  if (out_.actor())
    out_.own(end_);
}

void connection::send_message(const caf::message& msg) {
  send_bytes(to_bytes(msg));
}

void connection::send_bytes(bytes data) {
  if (!writable())
    throw error(no_end("send"), "send: this end of the pipe is read-only");
  out_.put(std::move(data), std::nullopt);
}

bytes connection::take(std::optional<millis> timeout) {
  if (!readable())
    throw error(no_end("receive"), "recv: this end of the pipe is write-only");
  try {
    return std::move(in_.get_many(1, timeout).front());
  } catch (const error& e) {
    // Both directions close together: EOF here means sending is over too.
    if (e.code() == errc::closed && writable())
      out_.mark_closed();
    throw;
  }
}

caf::message connection::recv() {
  return from_bytes(take(std::nullopt));
}

caf::message connection::recv(millis timeout) {
  return from_bytes(take(timeout));
}

bytes connection::recv_bytes() {
  return take(std::nullopt);
}

bytes connection::recv_bytes(millis timeout) {
  return take(timeout);
}

bool connection::poll(millis timeout) {
  if (!readable())
    throw error(no_end("receive"), "poll: this end of the pipe is write-only");
  return in_.poll(timeout);
}

void connection::close() {
  if (out_.actor())
    out_.close();
  if (in_.actor())
    in_.close();
}

void connection::throw_wrong_type(const caf::message& m) {
  auto err = make_error(errc::bad_message, "the message received has another type than asked for");
  throw error(err, "recv: the message received (" + std::to_string(m.size())
                     + " elements) has another type than asked for");
}

std::pair<connection, connection> pipe(node& owner, bool duplex) {
  detail::queue_core a_to_b{owner, {}};
  if (!duplex) {  // Python's Pipe(False): (reader, writer)
    detail::queue_core reader{a_to_b.actor(), 0};
    return {connection{std::move(reader), {}, 0}, connection{{}, std::move(a_to_b), 1}};
  }
  detail::queue_core b_to_a{owner, {}};
  detail::queue_core b_in{a_to_b.actor(), 0};
  detail::queue_core a_in{b_to_a.actor(), 0};
  return {connection{std::move(a_in), std::move(a_to_b), 0},
          connection{std::move(b_in), std::move(b_to_a), 1}};
}

} // namespace mproc

namespace mproc::wire {

void codec<connection>::encode(packer& pk, const connection& c, codec_state& st) {
  pk.pack_array(3);
  for (const auto* q : {&c.in_, &c.out_}) {
    if (q->actor())
      mproc::detail::encode_queue_ref(pk, *q, st);
    else
      pk.pack_nil();
  }
  pk.pack(c.end_);
}

bool codec<connection>::decode(const msgpack::object& o, connection& out, codec_state& st) {
  if (o.type != msgpack::type::ARRAY || o.via.array.size != 3)
    return type_mismatch(st, "connection [in, out, end]", o);
  mproc::detail::queue_core queues[2];
  for (int i = 0; i < 2; ++i) {
    const auto& q = o.via.array.ptr[i];
    if (q.type != msgpack::type::NIL && !mproc::detail::decode_queue_ref(q, queues[i], st))
      return false;
  }
  std::uint8_t end = 0;
  if (!codec<std::uint8_t>::decode(o.via.array.ptr[2], end, st))
    return false;
  out = connection{std::move(queues[0]), std::move(queues[1]), end};
  return true;
}

} // namespace mproc::wire
