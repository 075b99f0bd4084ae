#include "mproc/actors/pipe.hpp"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "mproc/actors/pipe_socket.hpp"
#include "mproc/runtime/message_bytes.hpp"
#include "mproc/runtime/node.hpp"
#include "mproc/serialization/protocol.hpp"

namespace mproc {

namespace {

// `connection` crosses processes as a spawn argument or message element.
[[maybe_unused]] const bool registered = detail::register_message_type<connection>();

[[noreturn]] void no_end(const std::string& what) {
  throw error(make_error(errc::bad_arguments, what), what);
}

// How an end may be used, on the wire.
enum class mode : std::uint8_t { duplex = 0, read_only = 1, write_only = 2 };

} // namespace

connection::connection(std::shared_ptr<detail::pipe_socket> socket, bool readable, bool writable)
  : socket_(std::move(socket)), readable_(readable), writable_(writable) {}

detail::pipe_socket& connection::usable(const char* what, bool to_read) const {
  if (!socket_)
    no_end(std::string{what} + ": not a pipe end");
  if (!(to_read ? readable_ : writable_))
    no_end(std::string{what} + (to_read ? ": this end of the pipe is write-only"
                                        : ": this end of the pipe is read-only"));
  return *socket_;
}

void connection::send_message(const caf::message& msg) {
  auto data = to_bytes(msg);
  usable("send", false).send(data.data(), data.size(), std::nullopt);
}

void connection::send_message(const caf::message& msg, wait_timeout timeout) {
  auto data = to_bytes(msg);
  usable("send", false).send(data.data(), data.size(), timeout.get());
}

void connection::send_bytes(const bytes& data) {
  usable("send", false).send(data.data(), data.size(), std::nullopt);
}

void connection::send_bytes(const bytes& data, wait_timeout timeout) {
  usable("send", false).send(data.data(), data.size(), timeout.get());
}

caf::message connection::recv() {
  return from_bytes(usable("recv", true).recv(std::nullopt));
}

caf::message connection::recv(wait_timeout timeout) {
  return from_bytes(usable("recv", true).recv(timeout.get()));
}

bytes connection::recv_bytes() {
  return usable("recv", true).recv(std::nullopt);
}

bytes connection::recv_bytes(wait_timeout timeout) {
  return usable("recv", true).recv(timeout.get());
}

bool connection::poll(wait_timeout timeout) {
  return usable("poll", true).poll(timeout.get());
}

int connection::fileno() const {
  if (!socket_)
    no_end("fileno: not a pipe end");
  // A closed end's number may be another file's by now (one sent away is closed here).
  if (socket_->closed())
    throw error(make_error(errc::closed, "fileno: the pipe end is closed"),
                "fileno: the pipe end is closed");
  return socket_->fd();
}

void connection::close() {
  if (socket_)
    socket_->close();
}

void connection::throw_wrong_type(const caf::message& m) {
  auto err = make_error(errc::bad_message, "the message received has another type than asked for");
  throw error(err, "recv: the message received (" + std::to_string(m.size())
                     + " elements) has another type than asked for");
}

std::pair<connection, connection> pipe(node&, bool duplex) {
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) {
    auto what = std::string{"pipe: socketpair: "} + std::strerror(errno);
    throw error(make_error(errc::spawn_failed, what), what);
  }
  auto a = std::make_shared<detail::pipe_socket>(fds[0]);
  auto b = std::make_shared<detail::pipe_socket>(fds[1]);
  if (!duplex)  // Python's Pipe(False): (reader, writer)
    return {connection{std::move(a), true, false}, connection{std::move(b), false, true}};
  return {connection{std::move(a), true, true}, connection{std::move(b), true, true}};
}

} // namespace mproc

namespace mproc::wire {

void codec<connection>::encode(packer& pk, const connection& c, codec_state& st) {
  auto refuse = [&](const std::string& why) {
    st.fail(why);
    pk.pack_nil();
  };
  if (!c.socket_)
    return refuse("not a pipe end");
  if (st.descriptors == nullptr || st.settle == nullptr)
    return refuse("a pipe end goes only to a process on this machine, as a spawn argument or "
                  "in a message (not to another machine, not inside a queue item)");
  if (st.descriptors->size() >= max_fds_per_frame)  // checked before the end is given away
    return refuse("a message carries at most " + std::to_string(max_fds_per_frame)
                  + " pipe ends");
  mproc::detail::pipe_socket::handoff h;
  try {
    h = c.socket_->lend();
  } catch (const mproc::error& e) {
    return refuse(e.what());
  }
  // Closed here only once the frame went to its link; a message that fails (a later
  // element, its size, a dead link) gives the end back untouched.
  st.settle->push_back([end = c.socket_](bool sent) { end->settle_lend(sent); });
  auto index = static_cast<std::uint32_t>(st.descriptors->size());
  st.descriptors->push_back(h.fd);
  auto m = c.readable_ && c.writable_ ? mode::duplex : c.readable_ ? mode::read_only : mode::write_only;
  pk.pack_array(4);
  pk.pack(index);
  pk.pack(static_cast<std::uint8_t>(m));
  for (const auto* buffered : {&h.unread, &h.unsent}) {  // copied: `h` ends here
    pk.pack_bin(static_cast<std::uint32_t>(buffered->size()));
    pk.pack_bin_body(buffered->data(), static_cast<std::uint32_t>(buffered->size()));
  }
}

bool codec<connection>::decode(const msgpack::object& o, connection& out, codec_state& st) {
  if (o.type != msgpack::type::ARRAY || o.via.array.size != 4)
    return type_mismatch(st, "connection [descriptor, mode, unread, unsent]", o);
  const auto* f = o.via.array.ptr;
  std::uint32_t index = 0;
  std::uint8_t m = 0;
  mproc::detail::pipe_socket::handoff h;
  if (!codec<std::uint32_t>::decode(f[0], index, st) || !codec<std::uint8_t>::decode(f[1], m, st)
      || !codec<bytes>::decode(f[2], h.unread, st) || !codec<bytes>::decode(f[3], h.unsent, st))
    return false;
  if (m > static_cast<std::uint8_t>(mode::write_only))
    return st.fail("connection mode " + std::to_string(m) + " is not 0, 1 or 2");
  auto* fds = st.descriptors;
  if (fds == nullptr || index >= fds->size() || (*fds)[index] < 0)
    return st.fail("connection: descriptor " + std::to_string(index)
                   + " did not come with the frame");
  h.fd = std::exchange((*fds)[index], -1);
  auto socket = std::make_shared<mproc::detail::pipe_socket>(std::move(h));
  socket->resume();
  auto md = static_cast<mode>(m);
  out = connection{std::move(socket), md != mode::write_only, md != mode::read_only};
  return true;
}

} // namespace mproc::wire
